"""The forest plot at the top of the report: one row per comparison, its primary effect with the 95% CI, the
±MDE band of that row shaded around 0, detected effects filled; the methods first, then the positive
controls below a divider, each block on its own x-axis.

A block whose rows share one endpoint is drawn in that endpoint's units; a block that mixes endpoints
(controls often do: KL on pass@1, the entropy bonus on entropy) is drawn in units of each row's MDE, so
the band is ±1 everywhere and "beyond the band" still means "larger than this design resolves" (a row
without an MDE in units of its CI's half-width, without a band). The numbers themselves, in the endpoint's
units, are written beside every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from steerbench.analysis.compare.plots import save_png  # noqa: E402

ROW_IN = (0.22, 0.3)  # inches per row (least, most): rows shrink so that many still fit on the first screen
ROWS_IN = 5.0  # rows get the most height until they fill this many inches, then shrink toward the least
TOP_IN, BOTTOM_IN = 0.35, 0.5  # room for the first block's title and the last block's x-axis
GAP_IN = 0.95  # between blocks: an x-axis, the divider, a title
WIDTH_IN = 12.0
DETECTED = "#1f5fa8"
MISSED = "#8c8c8c"
FAILED_CONTROL = "#c0392b"  # a control that should have been detected and was not: the instrument is blind


@dataclass(frozen=True)
class ForestRow:
    label: str  # left of the row: who, e.g. "steer [method.lambda_min=0.5]"
    endpoint: str  # the endpoint's display name, e.g. "pass@64"
    effect: float
    low: float  # 95% CI
    high: float
    mde: float  # minimal detectable effect (80% power, the family's strictest level); NaN if unknown
    detected: bool
    note: str  # right of the row: the numbers and the verdict, in the endpoint's units
    control: bool  # a positive control (drawn in the lower block)


def block_units(rows: list[ForestRow]) -> tuple[list[tuple[float, float, float, float]], str]:
    """(effect, low, high, mde) per row in the block's units, and the x-axis label."""
    endpoints = {r.endpoint for r in rows}
    if len(endpoints) == 1:
        return [(r.effect, r.low, r.high, r.mde) for r in rows], f"effect on {endpoints.pop()}"
    out, by_ci = [], False
    for r in rows:
        s = r.mde
        if not (math.isfinite(s) and s > 0):  # no MDE: the CI's half-width still puts the row on a scale
            s, by_ci = (r.high - r.low) / 2, True
        s = s if math.isfinite(s) and s > 0 else math.nan
        out.append((r.effect / s, r.low / s, r.high / s, r.mde / s))
    unit = "its MDE (CI half-width where none)" if by_ci else "its MDE"
    return out, f"effect ÷ {unit}: the endpoints differ"


def _draw_block(ax, rows: list[ForestRow], title: str) -> None:
    values, xlabel = block_units(rows)
    ys = list(range(len(rows)))[::-1]  # first row on top
    for y, r, (eff, lo, hi, mde) in zip(ys, rows, values, strict=True):
        if math.isfinite(mde):
            ax.fill_betweenx([y - 0.38, y + 0.38], -mde, mde, color="0.9", lw=0)
        if not math.isfinite(eff):
            continue
        color = DETECTED if r.detected else (FAILED_CONTROL if r.control else MISSED)
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=2, solid_capstyle="butt")
        ax.plot(eff, y, "o", ms=7, color=color, mfc=color if r.detected else "white", mew=1.6)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(ys, [r.label for r in rows], fontsize=9)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for y, r in zip(ys, rows, strict=True):
        ax.text(1.01, y, r.note, transform=beside, va="center", fontsize=9, clip_on=False)


def forest_figure(rows: list[ForestRow], path: Path) -> bool:
    """Write the forest plot of ``rows`` (methods, then controls) to ``path``; False if there are none."""
    blocks = [
        (title, block)
        for title, block in (
            (
                "methods against their matched grpo (primary endpoint; shaded: ±MDE)",
                [r for r in rows if not r.control],
            ),
            (
                "positive controls (filled: detected in the expected direction)",
                [r for r in rows if r.control],
            ),
        )
        if block
    ]
    if not blocks:
        return False
    sizes = [len(b) for _, b in blocks]
    gaps = GAP_IN * (len(blocks) - 1)
    row_in = max(ROW_IN[0], min(ROW_IN[1], ROWS_IN / len(rows)))
    height = row_in * sum(sizes) + TOP_IN + BOTTOM_IN + gaps
    fig, axes = plt.subplots(
        len(blocks), 1, figsize=(WIDTH_IN, height), squeeze=False, gridspec_kw={"height_ratios": sizes}
    )
    for ax, (title, block) in zip(axes[:, 0], blocks, strict=True):
        _draw_block(ax, block, title)
    longest = max(len(r.label) for r in rows)
    mean_axes_in = row_in * sum(sizes) / len(blocks)
    # room for the row labels on the left and for the numbers beside each row on the right
    fig.subplots_adjust(
        left=min(0.4, 0.02 + 0.0058 * longest),
        right=0.74,
        top=1 - TOP_IN / height,
        bottom=BOTTOM_IN / height,
        hspace=GAP_IN / mean_axes_in,
    )
    if len(blocks) > 1:  # the divider between methods and controls, mid-gap
        y = (BOTTOM_IN + row_in * sizes[1] + GAP_IN * 0.45) / height
        fig.add_artist(Line2D([0.01, 0.99], [y, y], color="0.4", lw=1, transform=fig.transFigure))
    save_png(fig, path)
    return True
