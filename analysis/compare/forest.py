"""The forest plot at the top of the report: one row per comparison, its primary effect with the 95% CI, the
±MDE band of that row shaded around 0, detected effects filled; the methods first, then the positive
controls below a divider, each block on its own x-axis.

The methods are one panel per scenario, side by side: a method is one row across the panels (its label
once, on the left), the panels share one x-axis, and a scenario the method was not tested in (not run, or
degenerate) says so in its row. Beside a single panel there is room for the numbers of each row; beside
several there is not, and the headline above the plot carries them. The controls are one block across the
full width, their numbers beside them.

A block whose rows share one endpoint is drawn in that endpoint's units; a block that mixes endpoints
(controls often do: KL on pass@1, the entropy bonus on entropy) is drawn in units of each row's MDE, so
the band is ±1 everywhere and "beyond the band" still means "larger than this design resolves" (a row
without an MDE in units of its CI's half-width, without a band). The numbers themselves, in the endpoint's
units, are written beside the rows (the headline's, for several scenario panels).
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
from steerbench.analysis.compare.runs import sorted_scenarios  # noqa: E402

ROW_IN = (0.22, 0.3)  # inches per row (least, most): rows shrink so that many still fit on the first screen
ROWS_IN = 5.0  # rows get the most height until they fill this many inches, then shrink toward the least
TITLE_IN, PANEL_TITLE_IN, AXIS_IN = 0.35, 0.25, 0.5  # a block's title, its panels' titles, its x-axis
DIVIDER_IN = 0.1  # between the methods' x-axis and the controls' title
WIDTH_IN = 12.0
NOTES_RIGHT = 0.74  # where the axes end when the numbers of each row are written beside them
PANEL_GAP = 0.08  # between the scenario panels, as a fraction of a panel's width
METHODS_TITLE = "methods against their matched grpo (primary endpoint; shaded: ±MDE)"
CONTROLS_TITLE = "positive controls (filled: detected in the expected direction)"
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
    panel: str = ""  # the methods' panel it belongs to (its scenario); ignored for a control


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


def _draw_rows(ax, rows: list[ForestRow], values: list[tuple], ys: list[float]) -> None:
    for y, r, (eff, lo, hi, mde) in zip(ys, rows, values, strict=True):
        if math.isfinite(mde):
            ax.fill_betweenx([y - 0.38, y + 0.38], -mde, mde, color="0.9", lw=0)
        if not math.isfinite(eff):
            continue
        color = DETECTED if r.detected else (FAILED_CONTROL if r.control else MISSED)
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=2, solid_capstyle="butt")
        ax.plot(eff, y, "o", ms=7, color=color, mfc=color if r.detected else "white", mew=1.6)


def _axis(ax, n: int, xlabel: str) -> None:
    ax.axvline(0, color="k", lw=0.8)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(alpha=0.3, axis="x")


def _notes(ax, rows: list[ForestRow], ys: list[float]) -> None:
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for y, r in zip(ys, rows, strict=True):
        ax.text(1.01, y, r.note, transform=beside, va="center", fontsize=9, clip_on=False)


def _not_tested(ax, labels: list[str], tested: set[str], y_of: dict[str, float]) -> None:
    """Say so in the row of a method without a comparison in this panel's scenario (not run there, or
    degenerate: the note under the plot names those), rather than leave the row blank."""
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for label in labels:
        if label not in tested:
            ax.text(0.5, y_of[label], "not tested", transform=beside, ha="center", va="center", fontsize=8,
                    style="italic", color=MISSED, bbox={"fc": "white", "ec": "none", "pad": 1})  # fmt: skip


def _method_panels(fig, box: tuple[float, float, float, float], rows: list[ForestRow]) -> None:
    """One panel per scenario within ``box`` (left, right, bottom, top; figure fractions), in the scenarios'
    order, one row per method across them, in the order the rows come; numbers beside a single panel only."""
    panels = sorted_scenarios(r.panel for r in rows)
    labels = list(dict.fromkeys(r.label for r in rows))
    y_of = {label: float(len(labels) - 1 - i) for i, label in enumerate(labels)}  # first row on top
    values, xlabel = block_units(rows)  # one scale for every panel: the x-axis is shared
    left, right, bottom, top = box
    grid = fig.add_gridspec(1, len(panels), left=left, right=right, bottom=bottom, top=top, wspace=PANEL_GAP)
    first = None
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(grid[0, i], sharex=first)
        first = first or ax
        mine = [j for j, r in enumerate(rows) if r.panel == panel]
        here, ys = [rows[j] for j in mine], [y_of[rows[j].label] for j in mine]
        _draw_rows(ax, here, [values[j] for j in mine], ys)
        _not_tested(ax, labels, {r.label for r in here}, y_of)
        _axis(ax, len(labels), xlabel)
        ax.set_yticks(list(y_of.values()), labels if i == 0 else [], fontsize=9)  # the labels once, left
        if len(panels) > 1:
            ax.set_title(panel, fontsize=10)
        else:
            _notes(ax, here, ys)


def _control_block(fig, box: tuple[float, float, float, float], rows: list[ForestRow]) -> None:
    values, xlabel = block_units(rows)
    ys = [float(y) for y in range(len(rows))][::-1]
    left, right, bottom, top = box
    ax = fig.add_subplot(fig.add_gridspec(1, 1, left=left, right=right, bottom=bottom, top=top)[0, 0])
    _draw_rows(ax, rows, values, ys)
    _axis(ax, len(rows), xlabel)
    ax.set_yticks(ys, [r.label for r in rows], fontsize=9)
    _notes(ax, rows, ys)


def forest_figure(rows: list[ForestRow], path: Path) -> bool:
    """Write the forest plot of ``rows`` (methods, then controls) to ``path``; False if there are none."""
    methods = [r for r in rows if not r.control]
    controls = [r for r in rows if r.control]
    if not rows:
        return False
    panels = len({r.panel for r in methods})
    n_methods = len({r.label for r in methods})
    row_in = max(ROW_IN[0], min(ROW_IN[1], ROWS_IN / (n_methods + len(controls))))
    # per block, top down: (draw, title, inches above its rows, row count, right edge of its axes, rows)
    blocks = []
    if methods:
        head = TITLE_IN + (PANEL_TITLE_IN if panels > 1 else 0)
        right = NOTES_RIGHT if panels == 1 else 0.99
        blocks.append((_method_panels, METHODS_TITLE, head, n_methods, right, methods))
    if controls:
        blocks.append((_control_block, CONTROLS_TITLE, TITLE_IN, len(controls), NOTES_RIGHT, controls))
    heights = [head + n * row_in + AXIS_IN for _, _, head, n, _, _ in blocks]
    height = sum(heights) + DIVIDER_IN * (len(blocks) - 1)
    fig = plt.figure(figsize=(WIDTH_IN, height))
    # room for the row labels on the left (the longest of either block: their axes line up)
    left = min(0.4, 0.02 + 0.0058 * max(len(r.label) for r in rows))
    top = height  # inches from the bottom
    for (draw, title, head, _, right, block), block_in in zip(blocks, heights, strict=True):
        title_y = (top - TITLE_IN + 0.06) / height  # at the foot of its slot: just above what it names
        fig.text(left, title_y, title, fontsize=10, va="bottom")
        draw(fig, (left, right, (top - block_in + AXIS_IN) / height, (top - head) / height), block)
        top -= block_in + DIVIDER_IN
        if top > 0:  # the divider between methods and controls, mid-gap
            y = (top + DIVIDER_IN / 2) / height
            fig.add_artist(Line2D([0.01, 0.99], [y, y], color="0.4", lw=1, transform=fig.transFigure))
    save_png(fig, path)
    return True
