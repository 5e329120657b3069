"""Positive controls: effects known in direction, checked before a null result is trusted.

`steerbench grid controls` runs grpo, an entropy bonus and a KL penalty (knobs in
`experiments/method/control_*.yaml`) under the standard scenario, and grpo under random rewards: the three
required claims. `CONTROLS` lists five; the other two (the bonus and the KL under random rewards) are
reported when their cells were run (`steerbench grid controls --exclude ''`). A treatment counts only at its control's dose (read from that file, checked against
each run's config.yaml when compare has it): the `paper` grid's entropy bonus at its published α = 0.001
is a method under test, not a positive control. Each control
compares a per-run statistic of a treatment cell with a reference cell of the same task, paired by seed:

    d_s = stat(treatment, seed s) − stat(reference, seed s)        over the seeds both cells ran
    effect = mean(d),  95% interval = effect ± t_{0.975, n−1} · sd(d)/√n,
    p = two-sided one-sample t-test of mean(d) = 0 (n − 1 degrees of freedom)

and is `detected` iff p < 0.05 and the effect has the expected sign (the interval then excludes 0 on
that side). Fewer than two paired seeds give no interval and `not detected`.

Per-run statistics (from the run's logged metrics):
    final_entropy  last `entropy/mean`
    passk_drift    |last − first `val/pass@k`|  (the first evaluation is the warm start's, at step 0)
    pass1_rise     last − first `val/pass@1`
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from steerbench.analysis.compare.inference import finite, holm, min_detectable, paired_t
from steerbench.analysis.compare.runs import col
from steerbench.config import CONFIG_DIR

ALPHA = 0.05  # family-wise level of the controls' tests (Holm)
POWER = 0.8  # of the minimal detectable effect reported with each control
STATISTICS = ("final_entropy", "passk_drift", "pass1_rise")


@dataclass(frozen=True)
class Control:
    name: str
    claim: str  # what must be seen, in words
    statistic: str  # a key of `run_statistics`
    treatment: tuple[str, str]  # (method, scenario)
    reference: tuple[str, str]  # (method, scenario)
    direction: int  # +1: treatment − reference > 0 expected; −1: < 0
    config: str | None = None  # experiments/method/<config>.yaml: the treatment's dose


def control_dose(config: str | None) -> dict[str, Any]:
    """The knobs a control's method config sets on top of its method (``{}``: none required)."""
    if config is None:
        return {}
    raw = yaml.safe_load((CONFIG_DIR / "method" / f"{config}.yaml").read_text())
    return {f"method.{k}": v for k, v in raw.items() if k != "defaults"}


CONTROLS = (
    Control(
        "entropy_bonus",
        "an entropy bonus ends at a higher entropy than grpo",
        "final_entropy",
        ("entropy_bonus", "standard"),
        ("grpo", "standard"),
        +1,
        "control_entropy_bonus",
    ),
    Control(
        "kl",
        "a KL penalty to the warm start keeps pass@k closer to the warm start's than grpo",
        "passk_drift",
        ("kl", "standard"),
        ("grpo", "standard"),
        -1,
        "control_kl",
    ),
    # their direction does not depend on the reward, so under coin-flip rewards they make two more
    # controls (the preset leaves these cells out to fit its time budget; --exclude '' runs them)
    Control(
        "entropy_bonus_random_reward",
        "under coin-flip rewards too, an entropy bonus ends at a higher entropy than grpo",
        "final_entropy",
        ("entropy_bonus", "random_reward"),
        ("grpo", "random_reward"),
        +1,
        "control_entropy_bonus",
    ),
    Control(
        "kl_random_reward",
        "under coin-flip rewards too, a KL penalty keeps pass@k closer to the warm start's than grpo",
        "passk_drift",
        ("kl", "random_reward"),
        ("grpo", "random_reward"),
        -1,
        "control_kl",
    ),
    Control(
        "random_reward",
        "coin-flip rewards raise pass@1 less than the verifier's rewards",
        "pass1_rise",
        ("grpo", "random_reward"),
        ("grpo", "standard"),
        -1,
    ),
)


def _first_last(values: pd.Series) -> tuple[float, float]:
    v = values.dropna()
    return (float(v.iloc[0]), float(v.iloc[-1])) if len(v) else (math.nan, math.nan)


def run_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: identity columns, final pass@1 and pass@k, and the statistics of the controls."""
    rows = []
    for run, df in frame.groupby("run", sort=True):
        df = df.sort_values("step")
        _, h_last = _first_last(col(df, "entropy/mean"))
        k0, k1 = _first_last(col(df, "val/pass@k"))
        p0, p1 = _first_last(col(df, "val/pass@1"))
        first = df.iloc[0]
        rows.append(
            {
                "run": run,
                **{c: first[c] for c in ("task", "variant", "method", "scenario", "seed")},
                "final_entropy": h_last,
                "final_pass1": p1,
                "final_passk": k1,
                "passk_drift": abs(k1 - k0),
                "pass1_rise": p1 - p0,
            }
        )
    return pd.DataFrame(rows)


def paired_test(diffs: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, 95% low, 95% high, two-sided p) of a one-sample t-test of mean(diffs) = 0; NaN if n < 2.

    compare's paired t (``inference.paired_t``), except that every seed moving by exactly the same
    non-zero amount counts as a certain effect (p = 0) rather than an untestable one."""
    d = finite(diffs)
    mean = float(d.mean()) if len(d) else math.nan
    p, low, high = paired_t(d)
    if len(d) >= 2 and low == high == mean and mean != 0:
        p = 0.0
    return mean, low, high, p


def evaluate_controls(
    frame: pd.DataFrame, configs: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every control whose treatment and reference cells are both in `frame`, per task, in `CONTROLS`
    order, once per dose. A treatment run of the plain variant counts only at the control's dose (with
    ``configs``: run → flattened config.yaml, as ``load_runs`` reads them); a variant that sweeps only the
    method's own knobs (``method.beta=0.003``: a graded dose) is a control of its own, against the
    reference cell of the plain variant. Runs of several grids (variants that name a folder) are told apart
    and each compared within its own variant."""
    per_run = run_statistics(frame)
    out = []
    for task, runs in per_run.groupby("task", sort=True):
        variants = sorted(runs["variant"].unique(), key=lambda v: (_dose_of(v) is not None, v))
        for c in CONTROLS:
            for variant in variants:
                dose = _dose_of(variant)
                home = "" if dose is not None else variant  # where the reference cell lives
                here = runs[runs["variant"] == variant]
                treat = _cell(here if dose is not None else _at_dose(here, c, configs), c.treatment)
                ref = _cell(runs[runs["variant"] == home], c.reference)
                if treat.empty or ref.empty or (dose is not None and c.treatment[0] == c.reference[0]):
                    continue
                out.append(_tested(c, task, variant, treat, ref))
    return _corrected(out)


def _dose_of(variant: str) -> str | None:
    """The swept method knobs of a graded-dose variant ("method.beta=0.003"), else None."""
    parts = str(variant).split()
    return variant if parts and all(p.startswith("method.") and "=" in p for p in parts) else None


def _tested(c: Control, task: str, variant: str, treat: pd.DataFrame, ref: pd.DataFrame) -> dict[str, Any]:
    pairs = treat.join(ref, lsuffix="_t", rsuffix="_r", how="inner").dropna()
    diffs = (pairs[f"{c.statistic}_t"] - pairs[f"{c.statistic}_r"]).to_numpy()
    effect, low, high, p = paired_test(diffs)
    return {
        "control": c.name,
        "claim": c.claim,
        "task": task,
        "variant": variant,
        "statistic": c.statistic,
        "treatment": "/".join(c.treatment),
        "reference": "/".join(c.reference),
        "expected": "> 0" if c.direction > 0 else "< 0",
        "seeds": [int(s) for s in pairs.index],
        "treatment_mean": float(pairs[f"{c.statistic}_t"].mean()),
        "reference_mean": float(pairs[f"{c.statistic}_r"].mean()),
        "effect": effect,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "sd": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan,
    }


def _corrected(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Holm over the controls of the report (one family: each control is the primary test of its claim),
    the MDE at the family's strictest level, and the verdict: detected iff Holm p < α with the expected sign."""
    size = max(1, len(results))
    adjusted = holm([r["p_value"] for r in results])
    for r, p_adj in zip(results, adjusted, strict=True):
        r["p_adj"] = p_adj
        r["mde"] = min_detectable(r.pop("sd"), len(r["seeds"]), ALPHA / size, POWER)
        expected = 1 if r["expected"] == "> 0" else -1
        detected = p_adj == p_adj and p_adj < ALPHA and np.sign(r["effect"]) == expected
        r["verdict"] = "detected" if detected else "not detected"
    return results


def _at_dose(runs: pd.DataFrame, c: Control, configs: dict[str, dict[str, Any]] | None) -> pd.DataFrame:
    dose = control_dose(c.config)
    if configs is None or not dose:
        return runs
    at_dose = [all(configs.get(run, {}).get(k) == v for k, v in dose.items()) for run in runs["run"]]
    return runs[at_dose]


def _cell(runs: pd.DataFrame, cell: tuple[str, str]) -> pd.DataFrame:
    """The cell's statistics indexed by seed (a seed run twice keeps its last run)."""
    method, scenario = cell
    sel = runs[(runs["method"] == method) & (runs["scenario"] == scenario)]
    return sel.drop_duplicates("seed", keep="last").set_index("seed")[list(STATISTICS)]


def describe(result: dict[str, Any]) -> str:
    """One sentence with the numbers."""
    r = result
    where = r["task"] + (f", {r['variant']}" if r["variant"] else "")

    def f(x: float, spec: str = "+.3g") -> str:
        return "n/a" if not np.isfinite(x) else format(x, spec)

    return (
        f"[{where}] control {r['control']}: {r['claim']} — {r['statistic']} {r['treatment']} − "
        f"{r['reference']} = {f(r['effect'])} [{f(r['ci_low'])}, {f(r['ci_high'])}], "
        f"p = {f(r['p_value'], '.2g')}, {len(r['seeds'])} seeds (expected {r['expected']}): "
        f"{r['verdict'].upper()}."
    )


def as_json(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results with NaN as None (null in JSON)."""
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        for r in results
    ]


def write_controls(results: list[dict[str, Any]], out: Path) -> str | None:
    """Write controls.json into `out`; returns its name, or None (nothing written) without results."""
    if not results:
        return None
    out.mkdir(parents=True, exist_ok=True)
    (out / "controls.json").write_text(json.dumps(as_json(results), indent=2, sort_keys=True) + "\n")
    return "controls.json"
