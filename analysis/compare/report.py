"""The comparison report: one list of sections (``render``), written as ``report.md`` and as a
self-contained ``report.html``, so both always say the same thing.

Order: when ``effects`` are given, the first screen (``verdict_page``: a headline sentence per method, the
controls, the design in one line, the forest plot); then the details: the verdict table (each method
against its matched grpo control), the resolution of the seeds at hand, the findings, the key figures, the
full tables and the remaining figures. The details have three significant figures. ``write_report`` also
writes ``summary.csv`` (per cell), ``runs.csv`` (per run) and ``verdicts.csv`` (per method cell); all
sorted and free of timestamps, so the same runs give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from steerbench.analysis.compare import design, omega_grid, plots, verdict_page
from steerbench.analysis.compare.controls import evaluate_controls, write_controls
from steerbench.analysis.compare.degenerate import fingerprints
from steerbench.analysis.compare.effects import cpu_minutes, effects_table, grid_family
from steerbench.analysis.compare.effects import design_line as design_line_of
from steerbench.analysis.compare.findings import findings, fmt, fmt_signed, label
from steerbench.analysis.compare.matching import ALPHA, CONTROL, POWER, VERDICT_STATS, separates, verdicts
from steerbench.analysis.compare.render import (
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Section,
    Table,
    to_html,
    to_markdown,
)
from steerbench.analysis.compare.runs import CELL, Runs, finished_only
from steerbench.analysis.compare.summary import STATS, cell_summary, run_stats
from steerbench.analysis.compare.wording import TestWording, wording

KEY_FIGURES = ("entropy_vs_step.png", "accuracy_vs_step.png")
ARROW = {"final_entropy": "H", "final_pass1": "pass@1", "final_passk": "pass@k"}


# --------------------------------------------------------------------------------------------- tables


def _interval(mean: float, lo: float, hi: float, signed: bool = False) -> str:
    head = fmt_signed(mean) if signed else fmt(mean)
    if not np.isfinite(lo) or lo == hi == mean:  # one seed, or every seed the same
        return head
    return f"{head} [{fmt(lo)}, {fmt(hi)}]"


def _cell_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    cols = {}
    if df["task"].nunique() > 1:
        cols["task"] = df["task"]
    if df["backend"].nunique() > 1:
        cols["backend"] = df["backend"]
    cols["scenario"] = df["scenario"]
    cols["method"] = pd.Series(
        [label(m, v) for m, v in zip(df["method"], df["variant"], strict=True)], df.index
    )
    return cols


def _control(r: pd.Series) -> str:
    if r["control_variant"] is None:
        return "none (no grpo runs)"
    if not r["matched"]:
        return f"none: nearest grpo ({r['control_scenario']}) differs in {r['differs']}"
    return label(CONTROL, r["control_variant"])


def _separation(r: pd.Series) -> str:
    marks = [f"{ARROW[s]}{'↑' if r[f'{s}_diff'] > 0 else '↓'}" for s in VERDICT_STATS if separates(r, s)]
    return "✔ " + ", ".join(marks) if marks else "—"


def _wording(v: pd.DataFrame) -> TestWording:
    return wording(v["test"].iloc[0] if len(v) else None)


def _runs_column(v: pd.DataFrame) -> tuple[str, pd.Series]:
    """(header, each comparison's count of its primary endpoint): paired seeds, or runs as n/n."""
    w = _wording(v)
    counts = [
        (w.count if r["matched"] else w.count_unmatched).format(*w.sizes_of(r, r.get("primary")))
        for _, r in v.iterrows()
    ]
    return w.runs_header, pd.Series(counts, v.index, dtype=object)


def verdict_table(v: pd.DataFrame) -> pd.DataFrame:
    cols = _cell_columns(v)
    cols["matched control"] = v.apply(_control, axis=1)
    name, counts = _runs_column(v)
    cols[name] = counts
    for stat, name in VERDICT_STATS.items():
        cols[f"Δ {name} [95% CI]"] = [
            _interval(r[f"{stat}_diff"], r[f"{stat}_diff_low"], r[f"{stat}_diff_high"], signed=True)
            for _, r in v.iterrows()
        ]
        cols[f"Holm p ({name})"] = [fmt(p) for p in v[f"{stat}_p_holm"]]
    cols["separates"] = v.apply(_separation, axis=1)
    return pd.DataFrame(cols)


def resolution_table(v: pd.DataFrame) -> pd.DataFrame:
    m = v[v["matched"]]
    cols = _cell_columns(m)
    runs_name, counts = _runs_column(m)
    cols[runs_name] = counts
    for stat, name in VERDICT_STATS.items():
        cols[f"detectable Δ {name}"] = [fmt(x) for x in m[f"{stat}_mdd"]]
    floor = _wording(m).floor_header
    if floor:
        cols[floor] = [fmt(2.0 / 2**n) if n else "n/a" for n in m["pairs"]]
    return pd.DataFrame(cols)


def time_to_verdict(runs: Runs, frame: pd.DataFrame, v: pd.DataFrame) -> str:
    """What the verdict cost (the runs' CPU-minutes) and the resolution it bought (the median detectable Δ of
    the family's primary endpoint); "" where the runs recorded no time."""
    names = sorted(frame["run"].unique())
    minutes = cpu_minutes(runs, names)
    if minutes != minutes:
        return ""
    primary = v["primary"].iloc[0]
    tested = v[v["matched"] & (v["degenerate"].fillna("") == "")][f"{primary}_mdd"]
    tested = tested[np.isfinite(tested)]
    bought = (
        f", for a median detectable Δ {VERDICT_STATS[primary]} of ±{fmt(tested.median())}"
        if len(tested)
        else ""
    )
    return (
        f"Time to verdict: {minutes:.0f} CPU-minutes for these {len(names)} runs (each run's wall time on one "
        f"thread, summed; the warm start in the run that built it){bought}."
    )


def target_table(v: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Per endpoint and scenario: a third of grpo's own effect there (its runs' mean change from the warm
    start), how many of the tested comparisons' detectable Δ are within it, and which are not (empty without
    grpo's effects)."""
    effects = design.grpo_effects(frame)
    own = design.own_effects(effects) if not effects.empty else {}
    tested = v[v["matched"] & (v["degenerate"].fillna("") == "")]
    rows = []
    for stat, name in VERDICT_STATS.items():
        for key, cell in tested.groupby(["task", "control_scenario", "control_variant"], sort=False):
            third = abs(own.get(key, {}).get(stat, np.nan)) / 3
            mde = cell[f"{stat}_mdd"]
            if np.isnan(third) or mde.isna().all():
                continue
            misses = [
                f"{label(m, variant)} ±{fmt(x)}"
                for m, variant, x in zip(cell["method"], cell["variant"], mde, strict=True)
                if not x <= third
            ]
            rows.append(
                {
                    "endpoint": name,
                    "scenario": label(key[1], key[2]),
                    "a third of grpo's effect": fmt(third),
                    "detectable Δ within it": f"{len(cell) - len(misses)} of {len(cell)}",
                    "not within": ", ".join(misses) or "—",
                }
            )
    return pd.DataFrame(rows)


def differences_table(v: pd.DataFrame) -> pd.DataFrame:
    rows = []
    where = _cell_columns(v)
    w = _wording(v)
    for _, r in v[v["matched"]].iterrows():
        for stat, name in VERDICT_STATS.items():
            rows.append(
                {
                    **{k: s[r.name] for k, s in where.items()},
                    "control": label(CONTROL, r["control_variant"]),
                    "statistic": name,
                    w.endpoint_runs_header: w.count.format(r[f"{stat}_n"], r[f"{stat}_n_control"]),
                    "Δ mean [95% CI]": _interval(
                        r[f"{stat}_diff"], r[f"{stat}_diff_low"], r[f"{stat}_diff_high"], signed=True
                    ),
                    f"p ({w.t_test})": fmt(r[f"{stat}_p"]),
                    f"p ({w.exact_test})": fmt(r[f"{stat}_p_exact"]),
                    "p (Holm)": fmt(r[f"{stat}_p_holm"]),
                    w.effect_size: fmt(r[f"{stat}_dz"]),
                    "detectable Δ": fmt(r[f"{stat}_mdd"]),
                }
            )
    return pd.DataFrame(rows)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = _cell_columns(summary)
    cols["seeds"] = summary["n_seeds"].astype(str)
    for stat, name in STATS.items():
        cols[name] = [
            _interval(r[f"{stat}_mean"], r[f"{stat}_ci_low"], r[f"{stat}_ci_high"])
            for _, r in summary.iterrows()
        ]
    return pd.DataFrame(cols)


def fit_table(fits: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario": fits["scenario"],
            "group": fits["group"],
            "points": fits["n"].astype(str),
            "a": [fmt(x) for x in fits["a"]],
            "b": [fmt(x) for x in fits["b"]],
        }
    )


# ----------------------------------------------------------------------------------------- the report


def method_note(v: pd.DataFrame) -> str:
    primary, size, name = v["primary"].iloc[0], int(v["family_size"].iloc[0]), v["family"].iloc[0]
    w = _wording(v)
    return (
        "Each method is compared with its matched control: the grpo cell whose config is identical except the "
        "method's own knobs (clip_higher's ε_high and clip_cov's clipping are their mechanism, so theirs), "
        + w.how
        + f"One primary endpoint, {VERDICT_STATS[primary]}, is tested in the family “{name}” of {size} "
        f"comparisons, fixed before the runs, Holm-corrected; ✔ marks a corrected p < {ALPHA:g} on it, and "
        "only those are called clear. The other endpoints are secondary: interval and uncorrected p, no "
        "verdict. A degenerate comparison (its control's config, or runs identical to another cell's) is "
        f"named once and left out of the family. Detectable Δ: the smallest true difference {w.test} "
        f"would find with {POWER:.0%} power at level {ALPHA:g}/{size} (Holm's strictest step), given "
        + w.spread
        + ". "
        + w.floor
        + "Cell intervals in the full table: 95% t-interval over seeds, cut to the quantity's "
        "range (coverage simulated in tests/test_compare_design.py)."
    )


def notes(runs: Runs, left_out: list[str]) -> list[str]:
    out = []
    if left_out:
        out.append(f"Left out (not finished; --include-partial to add them): {', '.join(left_out)}.")
    if runs.unidentified:
        out.append(f"Not read (no identity in meta.json, no config.yaml): {', '.join(runs.unidentified)}.")
    for run, lines in sorted(runs.damaged.items()):
        shown = ", ".join(map(str, lines[:10])) + (", …" if len(lines) > 10 else "")
        out.append(f"{run}: {len(lines)} unreadable metrics.jsonl line(s) skipped (line {shown}).")
    return out


def sections(
    title: str,
    runs: Runs,
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    v: pd.DataFrame,
    sentences: list[str],
    figures: list[tuple[str, str]],
    fits: pd.DataFrame,
    left_out: list[str],
    omega: pd.DataFrame | None = None,
    top: list[Section] | None = None,
) -> list[Section]:
    """The report's sections: the title, ``top`` (the first screen, ``verdict_page``), then the details."""
    out: list[Section] = [
        Heading(title, 1),
        *(top or []),
        Paragraph(
            f"{frame['run'].nunique()} runs; {len(summary)} cells (task × scenario × method × variant)."
        ),
        *(Paragraph(n) for n in notes(runs, left_out)),
        Heading("Verdict: each method against its matched grpo control"),
    ]
    if v.empty:
        out.append(Paragraph("No method other than grpo among these runs: nothing to compare."))
    else:
        out += [Table(verdict_table(v)), Paragraph(method_note(v))]
        if v["matched"].any():
            out += [
                Heading("Resolution: the smallest differences these seeds can detect"),
                Table(resolution_table(v)),
                *(Paragraph(n) for n in [time_to_verdict(runs, frame, v)] if n),
            ]
            targets = target_table(v, frame)
            if not targets.empty:
                out += [
                    Paragraph(
                        "Against the effect the comparison exists to resolve: a third of grpo's own change "
                        "from the warm start in the same scenario (the mean over the matched control's runs)."
                    ),
                    Table(targets),
                ]
    grpo = grpo_effect_table(frame)
    if not grpo.empty:
        out += [Heading("grpo's own effect, per seed: what the comparison must resolve"), Table(grpo)]
        out += [Paragraph(visible_note(frame)), Paragraph(pilot_note(frame))]
    out += [Heading("Findings"), Bullets(tuple(sentences) or ("(not enough runs for findings)",))]
    key = [f for f in figures if f[0] in KEY_FIGURES]
    if key:
        out += [Heading("Key figures"), *(Figure(*f) for f in key)]
    out += [Heading("Full tables"), Heading("Per cell: seed mean [95% t-interval over seeds]", 3)]
    out.append(Table(summary_table(summary)))
    if not v.empty and v["matched"].any():
        out += [Heading("Paired differences against the matched control", 3), Table(differences_table(v))]
    out += [
        Heading("Entropy–accuracy fit", 3),
        Paragraph(
            "Cui et al. (2025): R = −a·exp(H) + b, fitted to (entropy/mean, val/pass@1) at eval steps."
        ),
        Table(fit_table(fits)) if not fits.empty else Paragraph("(no eval steps with entropy to fit)"),
    ]
    if omega is not None and not omega.empty:
        out += [Heading("In-training Ω accuracy", 3), Table(omega)]
    rest = [f for f in figures if f[0] not in KEY_FIGURES]
    if rest:
        out += [Heading("More figures"), *(Figure(*f) for f in rest)]
    return out


def grpo_effect_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per grpo run: pass@1 from the warm start and its gain, the entropy lost, pass@k and its change."""
    e = design.grpo_effects(frame)
    if e.empty or e["pass1_gain"].isna().all():
        return pd.DataFrame()
    where = {"task": e["task"]} if e["task"].nunique() > 1 else {}
    return pd.DataFrame(
        {
            **where,
            "scenario": e["scenario"],
            "seed": e["seed"],
            "pass@1: warm start → gain": [
                f"{fmt(a)} → {fmt_signed(b)}" for a, b in zip(e["pass1_start"], e["pass1_gain"], strict=True)
            ],
            "entropy lost": [f"{x:.0%}" if x == x else "n/a" for x in e["entropy_loss"]],
            "pass@k: warm start → change": [
                f"{fmt(a)} → {fmt_signed(b)}"
                for a, b in zip(e["passk_start"], e["passk_change"], strict=True)
            ],
        }
    )


def visible_note(frame: pd.DataFrame) -> str:
    """Per scenario: on how many of grpo's seeds RL visibly helps (pass@1 +0.10) and visibly narrows (half
    the entropy lost, pass@k 0.15 below the warm start's), and which threshold the others miss."""
    parts = []
    for r in design.visible_effects(design.grpo_effects(frame)).itertuples():
        where = label(r.scenario, r.variant)
        if r.all == r.seeds:
            parts.append(f"{where}: every one of {r.seeds} seeds")
            continue
        short = [
            f"{name} on {r.seeds - getattr(r, column)}"
            for column, name in (
                ("pass1_gain", "pass@1 gain below +0.10"),
                ("entropy_loss", "entropy lost below 50%"),
                ("passk_change", "pass@k less than 0.15 below the warm start's"),
            )
            if getattr(r, column) < r.seeds
        ]
        parts.append(f"{where}: {r.all} of {r.seeds} seeds ({'; '.join(short)})")
    return (
        "grpo helps and narrows visibly (pass@1 +0.10 or more, half its entropy lost, pass@k 0.15 or more "
        "below the warm start's) in " + "; ".join(parts) + "."
    )


def pilot_note(frame: pd.DataFrame) -> str:
    """These grpo seeds as a grid's ``design.pilot`` (the seeds every preset runs are chosen from it)."""
    e = design.grpo_effects(frame)
    if len(e) < 2:
        return "One grpo seed: no seed-to-seed spread to plan a design with."
    entries = ", ".join(
        f"{k}: {{sd: {v['sd']:.3g}, effect: {v['effect']:.3g}}}" for k, v in design.pilot(e).items()
    )
    return (
        f"As a grid's design pilot ({len(e)} grpo seeds; sd of a paired difference taken as √2 × grpo's "
        f"seed sd): `pilot: {{{entries}}}`"
    )


def _csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def _verdict(runs: Runs, frame: pd.DataFrame, per_run: pd.DataFrame) -> tuple:
    """(verdicts, controls, effects, design line) of the runs, tested in the family their grids declared."""
    family = grid_family(runs)
    v = verdicts(per_run, runs.configs, family, fingerprints(frame))
    control_results = evaluate_controls(frame, runs.configs)
    effects = effects_table(v, control_results, runs, per_run)
    seeds = sorted(int(s) for s in per_run["seed"].unique())
    counts = per_run[per_run["method"] == CONTROL].groupby(list(CELL))["seed"].nunique()
    return (
        v,
        control_results,
        effects,
        design_line_of(effects, seeds, family, sorted(int(n) for n in counts)),
    )


def write_report(
    runs: Runs,
    out: str | Path,
    *,
    title: str = "steerbench comparison",
    include_partial: bool = False,
    effects: pd.DataFrame | None = None,
    design_line: str | None = None,
) -> dict:
    """Write summary.csv, runs.csv, verdicts.csv, effects.csv, controls.json, report.md, report.html and
    the PNG figures into ``out``.

    Only finished runs are summarised unless ``include_partial``; the others are listed in the report.
    The family is the one the runs' grids declared (``effects.grid_family``); the verdict's first screen
    (headline, forest plot, design line) comes from ``effects.csv``: one row per comparison × endpoint,
    computed from the runs unless ``effects`` (and ``design_line``) are given (an empty frame: no top).
    Returns ``{"summary", "verdicts", "effects" (DataFrames), "controls" (list), "files" (sorted names),
    "findings" (sentences), "left_out" (runs), "damaged" (run → line numbers)}``.
    """
    frame, left_out = (runs.frame, []) if include_partial else finished_only(runs.frame)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = cell_summary(frame)
    per_run = run_stats(frame).sort_values("run", kind="mergesort")
    v, control_results, computed, line = _verdict(runs, frame, per_run)
    if effects is None:
        effects, design_line = computed, line
    _csv(summary, out / "summary.csv")
    _csv(per_run, out / "runs.csv")
    _csv(v, out / "verdicts.csv")
    if not effects.empty:
        _csv(effects, out / "effects.csv")
    controls_file = write_controls(control_results, out)
    figures = plots.make_figures(frame, out)
    fits = plots.entropy_accuracy_fits(frame)
    omega_steps = omega_grid.omega_by_step(frame)  # in-training Ω accuracy, when runs logged omega/*
    if omega_grid.omega_figure(omega_steps, out / "omega_vs_step.png"):
        figures.append(
            ("omega_vs_step.png", "In-training Ω accuracy vs step (seed mean), one line per method")
        )
    sentences = findings(summary, v)
    top = verdict_page.verdict_section(effects, design_line, out)
    figures_on_top = [s.file for s in top if isinstance(s, Figure)]
    body = sections(
        title,
        runs,
        frame,
        summary,
        v,
        sentences,
        figures,
        fits,
        left_out,
        omega_grid.omega_table(omega_steps),
        top,
    )
    (out / "report.md").write_text(to_markdown(body))
    (out / "report.html").write_text(to_html(body, title, out))
    tables = ["summary.csv", "runs.csv", "verdicts.csv", *(["effects.csv"] if not effects.empty else [])]
    files = sorted(
        [*tables, "report.md", "report.html", *figures_on_top, *(n for n, _ in figures)]
        + ([controls_file] if controls_file else [])
    )
    return {
        "summary": summary,
        "verdicts": v,
        "effects": effects,
        "controls": control_results,
        "files": files,
        "findings": sentences,
        "left_out": left_out,
        "damaged": dict(runs.damaged),
    }
