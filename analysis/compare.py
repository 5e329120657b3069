"""Compare runs: load run stores, summarise method × scenario over seeds, write tables and a report.

``load_runs(dirs)`` walks folders for run stores (a folder holding ``metrics.jsonl`` + ``config.yaml``,
or ``summary.json``) written by either backend and returns one row per (run, step).
``summarise(frame)`` returns one row per task × scenario × method with the seed mean and a 95%
t-interval of each per-run statistic (``STATS``). ``write_report(frame, out)`` writes ``summary.csv``,
``report.md``, ``report.html`` (self-contained, base64 PNGs) and the PNG figures of ``plots.py``.

Per-run statistics (a run is one seed of one cell):
- ``final_pass1`` / ``final_passk``: last logged ``val/pass@1`` / ``val/pass@k``;
- ``final_entropy``: last ``entropy/mean``; ``entropy_area``: mean of ``entropy/mean`` over steps;
- ``steps_to_half``: the first ``step`` whose ``entropy/mean`` is at most half of the first logged
  step's (NaN if it never halves);
- ``dH_abs_median`` / ``dH_abs_p90``: median / 90th percentile of per-step ``|entropy/delta|``
  (``entropy/delta`` if logged, else the step-to-step difference of ``entropy/mean``), from the
  second step with an entropy on (the first has no predecessor);
- ``clip_low`` / ``clip_high``: mean ``clip/frac_low`` / ``clip/frac_high`` over steps;
- ``time_s``: total ``time/step_s``.
Everything is sorted and free of timestamps, so the same inputs give byte-identical csv and md.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats as st

from steerbench.errors import UsageError

RUN_COLUMNS = ["run", "task", "scenario", "method", "variant", "seed", "status"]
CELL = ["task", "scenario", "method", "variant"]  # what seeds are pooled over
STATS: dict[str, str] = {
    "final_pass1": "final val/pass@1",
    "final_passk": "final val/pass@k",
    "final_entropy": "final entropy",
    "entropy_area": "entropy area (mean H over steps)",
    "steps_to_half": "steps until entropy halves",
    "dH_abs_median": "median |ΔH| per step",
    "dH_abs_p90": "p90 |ΔH| per step",
    "clip_low": "clip frac low",
    "clip_high": "clip frac high",
    "time_s": "time (s)",
}
# The paper's order; anything else follows alphabetically.
METHOD_ORDER = [
    "grpo",
    "clip_higher",
    "kl",
    "entropy_bonus",
    "w_reinforce",
    "unlikeliness",
    "pos_adv_reweight",
    "clip_cov",
    "kl_cov",
    "steer",
]
SCENARIO_ORDER = ["standard", "extreme", "random_reward"]
SKIP_DIRS = {"checkpoints", "tokens", ".git", "__pycache__"}


def _order_key(order: Sequence[str]):
    def key(name: str) -> tuple[int, str]:
        base = str(name).split(" [", 1)[0]  # "grpo [lr=1e-4]" sorts with grpo
        return (order.index(base), str(name)) if base in order else (len(order), str(name))

    return key


def sorted_methods(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=_order_key(METHOD_ORDER))


def sorted_scenarios(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=_order_key(SCENARIO_ORDER))


# ----------------------------------------------------------------------------------------------- loading


def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (
        (path / "metrics.jsonl").is_file() and (path / "config.yaml").is_file()
    )


def find_run_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    """Every run store under ``dirs`` (a run dir itself counts), sorted, without duplicates."""
    found: set[Path] = set()
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise UsageError(f"compare: {str(root)!r} is not a directory; pass folders holding run stores")
        for cur, subdirs, _files in os.walk(root):
            here = Path(cur)
            if is_run_dir(here):
                found.add(here.resolve())
                subdirs.clear()  # a run store holds no other runs
                continue
            subdirs[:] = sorted(s for s in subdirs if s not in SKIP_DIRS)
    return sorted(found)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}  # a damaged meta.json may hold any JSON


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.jsonl; a torn last line (killed writer) is skipped; later rows win per step."""
    rows: dict[int, dict] = {}
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or "step" not in row:
            continue
        rows[int(row["step"])] = row
    return [rows[k] for k in sorted(rows)]


def _dig(cfg: dict, dotted: str):
    cur = cfg
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _identity(run: Path) -> dict:
    """method / scenario / task / seed / status of a run, from summary.json, config.yaml, then its name."""
    summary = _read_json(run / "summary.json")
    meta = _read_json(run / "meta.json")
    cfg: dict = {}
    if (run / "config.yaml").is_file():
        try:
            cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
        except yaml.YAMLError:
            cfg = {}
    parts = run.name.split("__")
    from_name = {}
    if len(parts) >= 4 and parts[3].startswith("seed"):
        from_name = {"method": parts[0], "scenario": parts[1], "task": parts[2], "seed": parts[3][4:]}
    ident = {
        "method": summary.get("method") or _dig(cfg, "method.name") or from_name.get("method"),
        "scenario": summary.get("scenario") or _dig(cfg, "scenario.name") or from_name.get("scenario"),
        "task": summary.get("task") or _dig(cfg, "task.name") or from_name.get("task"),
        "seed": summary.get("seed", _dig(cfg, "trainer.seed")),
    }
    if ident["seed"] is None:
        ident["seed"] = from_name.get("seed")
    if ident["method"] is None:
        ident["method"] = run.name
    ident["scenario"] = ident["scenario"] or "default"
    ident["task"] = ident["task"] or "default"
    try:
        ident["seed"] = int(ident["seed"])
    except (TypeError, ValueError):
        ident["seed"] = -1
    ident["status"] = meta.get("status") or ("done" if summary else "unknown")
    # a grid sweep tags its cells: <method>__<scenario>__<task>__seed<k>__lr=1e-4
    ident["variant"] = "__".join(parts[4:]) if from_name else ""
    return ident


def load_runs(dirs: Sequence[str | Path], *, root: Path | None = None) -> pd.DataFrame:
    """One row per (run, step): run identity columns (``RUN_COLUMNS``), ``step`` and every metric.

    ``run`` is the run dir relative to ``root`` (default: the common parent of all runs), so the frame
    does not depend on where the stores live. A run with a ``summary.json`` but no metrics contributes
    one row built from ``summary["final"]``. Raises ``UsageError`` if no run store is found.
    """
    runs = find_run_dirs(dirs)
    if not runs:
        raise UsageError(
            f"compare: no run stores under {', '.join(map(str, dirs))} "
            "(a run store has metrics.jsonl + config.yaml, or summary.json); run `steerbench grid` first"
        )
    base = root or Path(os.path.commonpath([str(r.parent) for r in runs]))
    idents = [_identity(run) for run in runs]
    keys = [tuple(i[c] for c in CELL) + (i["seed"],) for i in idents]
    if len(set(keys)) < len(keys):
        # the same method/scenario/task/seed twice (e.g. two grids): tell them apart by their folder
        for run, ident in zip(runs, idents, strict=True):
            try:
                parent = str(run.parent.relative_to(base)) if run.parent != base else base.name
            except ValueError:
                parent = str(run.parent)
            ident["variant"] = "/".join(x for x in (parent, ident["variant"]) if x)
    frames = []
    for run, ident in zip(runs, idents, strict=True):
        rows = read_metrics(run / "metrics.jsonl")
        if not rows:
            summary = _read_json(run / "summary.json")
            final = dict(summary.get("final") or {})
            final.setdefault("step", int(summary.get("steps", 0) or 0))
            rows = [final]
        df = pd.DataFrame(rows)
        try:
            name = str(run.relative_to(base))
        except ValueError:
            name = str(run)
        for col in reversed(RUN_COLUMNS):
            df.insert(0, col, name if col == "run" else ident[col])
        frames.append(df)
    frame = pd.concat(frames, ignore_index=True, sort=False)
    frame["step"] = frame["step"].astype(int)
    lead = RUN_COLUMNS + ["step"]
    metric_cols = sorted(c for c in frame.columns if c not in lead)
    frame = frame[lead + metric_cols]
    return frame.sort_values(["run", "step"], kind="mergesort").reset_index(drop=True)


# ------------------------------------------------------------------------------------------- statistics


def _last_valid(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.iloc[-1]) if len(s) else math.nan


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df:
        return pd.to_numeric(df[name], errors="coerce")
    return pd.Series(np.nan, index=df.index, dtype=float)


def steps_to_half(steps: Sequence[int], entropy: Sequence[float]) -> float:
    """First step whose entropy is ≤ half the first logged entropy; NaN if never (or no entropy)."""
    pairs = [(s, h) for s, h in zip(steps, entropy, strict=True) if h is not None and np.isfinite(h)]
    if not pairs:
        return math.nan
    h0 = pairs[0][1]
    for s, h in pairs[1:]:
        if h <= 0.5 * h0:
            return float(s)
    return math.nan


def abs_entropy_deltas(run: pd.DataFrame) -> np.ndarray:
    """Per-step |ΔH| of one run: ``entropy/delta`` where logged, else the difference of ``entropy/mean``."""
    run = run.sort_values("step")
    ent = _col(run, "entropy/mean")
    run, diffs = run[ent.notna()], ent[ent.notna()].diff()
    # the first step with an entropy has no predecessor (its logged delta is 0 by convention): skipped
    delta = _col(run, "entropy/delta")
    vals = (delta if delta.notna().any() else diffs).to_numpy(dtype=float)[1:]
    vals = np.abs(vals)
    return vals[np.isfinite(vals)]


def run_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run with the per-run statistics of ``STATS``."""
    out = []
    for _, df in frame.groupby("run", sort=True):
        df = df.sort_values("step")
        ent = _col(df, "entropy/mean")
        d = abs_entropy_deltas(df)
        row = {c: df[c].iloc[0] for c in RUN_COLUMNS}
        row.update(
            {
                "steps": int(df["step"].max()),
                "initial_entropy": float(ent.dropna().iloc[0]) if ent.notna().any() else math.nan,
                "final_pass1": _last_valid(_col(df, "val/pass@1")),
                "final_passk": _last_valid(_col(df, "val/pass@k")),
                "final_entropy": _last_valid(ent),
                "entropy_area": float(ent.mean()) if ent.notna().any() else math.nan,
                "steps_to_half": steps_to_half(df["step"].tolist(), ent.tolist()),
                "dH_abs_median": float(np.median(d)) if len(d) else math.nan,
                "dH_abs_p90": float(np.percentile(d, 90)) if len(d) else math.nan,
                "clip_low": float(_col(df, "clip/frac_low").mean()),
                "clip_high": float(_col(df, "clip/frac_high").mean()),
                "time_s": float(_col(df, "time/step_s").sum(min_count=1)),
            }
        )
        out.append(row)
    return pd.DataFrame(out)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and two-sided t-interval over the finite values: (mean, low, high, n); NaN bounds if n < 2."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per task × scenario × method: ``n_seeds``, and ``<stat>_mean|_ci_low|_ci_high`` for each
    per-run statistic (95% t-interval over seeds; NaN bounds with one seed). ``steps_to_half_n`` counts
    the seeds whose entropy halved at all."""
    per_run = run_stats(frame)
    rows = []
    for (task, scenario, method, variant), df in per_run.groupby(CELL, sort=False):
        row: dict = {"task": task, "scenario": scenario, "method": method, "variant": variant}
        row["n_seeds"] = int(len(df))
        row["seeds"] = ",".join(str(s) for s in sorted(df["seed"].tolist()))
        row["initial_entropy_mean"] = float(df["initial_entropy"].mean())
        for stat in STATS:
            mean, lo, hi, n = t_interval(df[stat].tolist())
            row[f"{stat}_mean"], row[f"{stat}_ci_low"], row[f"{stat}_ci_high"] = mean, lo, hi
            if stat == "steps_to_half":
                row["steps_to_half_n"] = n
        rows.append(row)
    out = pd.DataFrame(rows)
    mkey, skey = _order_key(METHOD_ORDER), _order_key(SCENARIO_ORDER)
    out["_t"] = out["task"].astype(str)
    out["_v"] = out["variant"].astype(str)
    out["_s"] = out["scenario"].map(skey)
    out["_m"] = out["method"].map(mkey)
    out = out.sort_values(["_t", "_v", "_s", "_m"], kind="mergesort").drop(columns=["_t", "_v", "_s", "_m"])
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------------- findings


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def _ci(row: pd.Series, stat: str, digits: int = 3) -> str:
    mean, lo, hi = row[f"{stat}_mean"], row[f"{stat}_ci_low"], row[f"{stat}_ci_high"]
    if not np.isfinite(lo):
        return _fmt(mean, digits)
    return f"{_fmt(mean, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def variants_vs_grpo(summary: pd.DataFrame) -> list[str]:
    """Swept cells (a variant) of one method against plain grpo of the same task and scenario."""
    out: list[str] = []
    plain = summary[(summary["variant"] == "") & (summary["method"] == "grpo")]
    baseline = {(r["task"], r["scenario"]): r for _, r in plain.iterrows()}
    swept = summary[(summary["variant"] != "") & (summary["method"] != "grpo")]
    for _, r in swept.iterrows():
        g = baseline.get((r["task"], r["scenario"]))
        if g is None or not np.isfinite(r["final_entropy_mean"]):
            continue
        h1 = g["final_entropy_mean"]
        clearly = np.isfinite(r["final_entropy_ci_low"]) and r["final_entropy_ci_low"] > h1
        out.append(
            f"[{r['scenario']}] {r['method']} ({r['variant']}) ends at entropy {_fmt(r['final_entropy_mean'])} "
            f"[{_fmt(r['final_entropy_ci_low'])}, {_fmt(r['final_entropy_ci_high'])}] vs grpo {_fmt(h1)}: "
            + ("clearly higher." if clearly else "not clearly higher.")
        )
    return out


def findings(summary: pd.DataFrame) -> list[str]:
    """Plain sentences, with numbers, answering the questions the comparison is for."""
    out: list[str] = []
    multi_task = summary["task"].nunique() > 1
    for (task, variant, scenario), df in summary.groupby(["task", "variant", "scenario"], sort=False):
        where = f"{scenario}" + (f", task {task}" if multi_task else "") + (f", {variant}" if variant else "")
        by = {r["method"]: r for _, r in df.iterrows()}
        g = by.get("grpo")
        if g is not None and np.isfinite(g["final_entropy_mean"]):
            h0, h1 = g["initial_entropy_mean"], g["final_entropy_mean"]
            drop = 1 - h1 / h0 if h0 and np.isfinite(h0) else math.nan
            halved = int(g["steps_to_half_n"])
            verdict = (
                "it collapses"
                if halved == g["n_seeds"] and halved > 0
                else ("it partly collapses" if halved > 0 else "it does not collapse")
            )
            when = (
                f", halving by step {_fmt(g['steps_to_half_mean'], 3)} on average ({halved}/{g['n_seeds']} seeds)"
                if halved
                else f" (halved in 0/{g['n_seeds']} seeds)"
            )
            out.append(
                f"[{where}] Under grpo, entropy goes from {_fmt(h0)} to {_fmt(h1)} "
                f"({_fmt(100 * drop, 2)}% lower){when}: {verdict}."
            )
            higher = [
                (m, r)
                for m, r in by.items()
                if m != "grpo"
                and np.isfinite(r["final_entropy_mean"])
                and r["final_entropy_mean"] > h1
                and (not np.isfinite(r["final_entropy_ci_low"]) or r["final_entropy_ci_low"] > h1)
            ]
            higher.sort(key=lambda mr: (-mr[1]["final_entropy_mean"], mr[0]))
            if higher:
                listed = ", ".join(f"{m} ({_fmt(r['final_entropy_mean'])})" for m, r in higher)
                out.append(
                    f"[{where}] Methods ending with higher entropy than grpo ({_fmt(h1)}; CI lower bound "
                    f"above it where there are ≥2 seeds), highest first: {listed}."
                )
            elif len(by) > 1:
                out.append(f"[{where}] No method ends with clearly higher entropy than grpo ({_fmt(h1)}).")
        s = by.get("steer")
        if s is not None and np.isfinite(s["dH_abs_p90_mean"]):
            others = [(m, r) for m, r in by.items() if m != "steer" and np.isfinite(r["dH_abs_p90_mean"])]
            if others:
                narrower = [m for m, r in others if s["dH_abs_p90_mean"] < r["dH_abs_p90_mean"]]
                ref = by.get("grpo")
                ref_txt = ""
                if ref is not None and np.isfinite(ref["dH_abs_p90_mean"]) and ref["dH_abs_p90_mean"] > 0:
                    ratio = s["dH_abs_p90_mean"] / ref["dH_abs_p90_mean"]
                    ref_txt = (
                        f" vs {_fmt(ref['dH_abs_p90_mean'])} for grpo ({_fmt(ratio, 2)}×; median "
                        f"{_fmt(s['dH_abs_median_mean'])} vs {_fmt(ref['dH_abs_median_mean'])})"
                    )
                verdict = (
                    "a narrower band than every other method"
                    if len(narrower) == len(others)
                    else f"narrower than {len(narrower)} of {len(others)} other methods"
                    + (f" ({', '.join(sorted_methods(narrower))})" if narrower else "")
                )
                out.append(
                    f"[{where}] steer's per-step |ΔH| 90th percentile is {_fmt(s['dH_abs_p90_mean'])}"
                    f"{ref_txt}: {verdict}."
                )
    out += variants_vs_grpo(summary)
    # extreme vs standard clipping, per method present in both
    for (task, variant), df in summary.groupby(["task", "variant"], sort=False):
        std = {r["method"]: r for _, r in df[df["scenario"] == "standard"].iterrows()}
        ext = {r["method"]: r for _, r in df[df["scenario"] == "extreme"].iterrows()}
        both = [m for m in sorted_methods(std) if m in ext]
        if not both:
            continue
        parts = []
        rises = 0
        for m in both:
            a, b = std[m], ext[m]
            if b["dH_abs_p90_mean"] > a["dH_abs_p90_mean"]:
                rises += 1
            parts.append(
                f"{m}: final H {_fmt(a['final_entropy_mean'])} → {_fmt(b['final_entropy_mean'])}, "
                f"p90 |ΔH| {_fmt(a['dH_abs_p90_mean'])} → {_fmt(b['dH_abs_p90_mean'])}, "
                f"pass@1 {_fmt(a['final_pass1_mean'])} → {_fmt(b['final_pass1_mean'])}"
            )
        where = ", ".join(x for x in (f"task {task}" if multi_task else "", variant) if x)
        where = f" ({where})" if where else ""
        out.append(
            f"Extreme clipping (ε_low=0.99, ε_high=5) vs standard{where}: per-step entropy moves get larger "
            f"for {rises} of {len(both)} methods. " + "; ".join(parts) + "."
        )
    return out


# ---------------------------------------------------------------------------------------------- tables


def _table_frame(summary: pd.DataFrame) -> pd.DataFrame:
    cols = {"task": summary["task"], "scenario": summary["scenario"], "method": summary["method"]}
    if (summary["variant"] != "").any():
        cols["variant"] = summary["variant"]
    cols["seeds"] = summary["n_seeds"].astype(str)
    for stat, label in STATS.items():
        cols[label] = [_ci(r, stat) for _, r in summary.iterrows()]
    return pd.DataFrame(cols)


def _markdown_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|")


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit_table(fits: pd.DataFrame) -> pd.DataFrame:
    if fits.empty:
        return fits
    return pd.DataFrame(
        {
            "scenario": fits["scenario"],
            "group": fits["group"],
            "points": fits["n"].astype(str),
            "a": [_fmt(v, 4) for v in fits["a"]],
            "b": [_fmt(v, 4) for v in fits["b"]],
        }
    )


def finished_only(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of finished runs (status ``done``), and the names of the runs left out."""
    done = frame["status"] == "done"
    left_out = sorted(frame.loc[~done, "run"].unique().tolist())
    if not done.any():
        raise UsageError(
            f"compare: none of the {frame['run'].nunique()} runs has finished (status done); "
            "finish them with `steerbench grid`, or pass --include-partial"
        )
    return frame[done].reset_index(drop=True), left_out


def write_report(
    frame: pd.DataFrame,
    out: str | Path,
    *,
    title: str = "steerbench comparison",
    include_partial: bool = False,
) -> dict:
    """Write summary.csv, runs.csv, report.md, report.html and the PNG figures into ``out``.

    Only finished runs are summarised unless ``include_partial``; the others are listed in the report.
    Returns ``{"summary": DataFrame, "files": [sorted relative paths], "findings": [sentences],
    "left_out": [runs]}``.
    """
    from steerbench.analysis import plots

    left_out: list[str] = []
    if not include_partial:
        frame, left_out = finished_only(frame)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(frame)
    per_run = run_stats(frame).sort_values("run", kind="mergesort")
    summary.to_csv(out / "summary.csv", index=False, float_format="%.10g", lineterminator="\n")
    per_run.to_csv(out / "runs.csv", index=False, float_format="%.10g", lineterminator="\n")
    figures = plots.make_figures(frame, summary, out)  # list of (file name, caption)
    fits = plots.entropy_accuracy_fits(frame)
    sentences = findings(summary)

    n_runs = frame["run"].nunique()
    md = [f"# {title}", ""]
    md.append(
        f"{n_runs} runs; {len(summary)} method × scenario cells. Intervals are 95% t-intervals over seeds."
    )
    if left_out:
        md += ["", f"Left out (not finished; --include-partial to add them): {', '.join(left_out)}."]
    md += ["", "## Findings", ""]
    md += [f"- {s}" for s in sentences] or ["- (not enough runs for findings)"]
    md += ["", "## Summary", "", _markdown_table(_table_frame(summary)), ""]
    md += [
        "## Entropy–accuracy fit",
        "",
        "Cui et al. (2025): R = −a·exp(H) + b, fitted to (entropy/mean, val/pass@1) at eval steps.",
        "",
    ]
    fit_tab = _fit_table(fits)
    md += [_markdown_table(fit_tab) if not fit_tab.empty else "(no eval steps with entropy to fit)", ""]
    md += ["## Figures", ""]
    for name, caption in figures:
        md += [f"![{caption}]({name})", ""]
    (out / "report.md").write_text("\n".join(md).rstrip() + "\n")

    html = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{_html_escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{_html_escape(title)}</h1>",
        f"<p>{n_runs} runs; {len(summary)} method × scenario cells. "
        "Intervals are 95% t-intervals over seeds.</p>",
        *([f"<p>Left out (not finished): {_html_escape(', '.join(left_out))}.</p>"] if left_out else []),
        "<h2>Findings</h2><ul>",
        *[f"<li>{_html_escape(s)}</li>" for s in sentences],
        "</ul><h2>Summary</h2>",
        _table_frame(summary).to_html(index=False, escape=True, border=0),
        "<h2>Entropy–accuracy fit</h2>",
        "<p>Cui et al. (2025): R = −a·exp(H) + b, fitted at eval steps.</p>",
        fit_tab.to_html(index=False, escape=True, border=0) if not fit_tab.empty else "<p>(no data)</p>",
        "<h2>Figures</h2>",
    ]
    for name, caption in figures:
        data = base64.b64encode((out / name).read_bytes()).decode("ascii")
        html.append(
            f'<figure><img alt="{_html_escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_html_escape(caption)}</figcaption></figure>"
        )
    html.append("</body></html>")
    (out / "report.html").write_text("\n".join(html) + "\n")
    files = sorted(["summary.csv", "runs.csv", "report.md", "report.html", *[n for n, _ in figures]])
    return {"summary": summary, "files": files, "findings": sentences, "left_out": left_out}


def compare(dirs: Sequence[str | Path], out: str | Path, *, include_partial: bool = False) -> dict:
    """``load_runs`` + ``write_report``: the body of ``steerbench compare``."""
    return write_report(load_runs(dirs), Path(out).resolve(), include_partial=include_partial)
