"""The design of a comparison: its unit of analysis, its two sources of variance, and the smallest effect
it can resolve, stated before the runs.

Unit of analysis. Every run is evaluated on the same fixed held-out prompts (the trainer's ``EVAL_SEED``),
so every run's statistic is a mean over the same J prompts, and a method is compared with its grpo control
in one of two ways (a grid's ``design.test``):

- ``paired``: by seed. For seed s, D_s = mean_j (x_{m,s,j} − x_{c,s,j}), Var(D_s) = σ²_train + σ²_eval/J,
  σ²_train the seed-to-seed variation of training (what a new seed would change), σ²_eval/J the noise of
  evaluating J prompts with k samples each. The test is the paired t-test over seeds on D_s (df = n − 1);
  in a balanced design this is the REML mixed-model test with random seed and prompt effects.
- ``welch``: two samples of runs, each run's mean over the same J prompts, Welch's t (unequal variances,
  Satterthwaite df), its p size-corrected to hold at every level (``inference.welch_t``). Pairing by seed
  pays only when two runs of one seed are correlated; on the comparison testbed every seed shares one warm
  start, and the correlation of a method's and grpo's final pass@64 over the paper's 8 seeds averaged
  ≈ 0.15 (−0.74 to +0.61 over 22 comparisons; the step-1 rollout is all they share). Two samples then lose
  nothing but gain df, and let the one grpo cell that every method of a scenario is tested against hold
  more seeds than each method (Dunnett's allocation: √m control runs per method run serve m comparisons),
  which shrinks every comparison's standard error at once.

Either way evaluation noise is never counted as replication: a verdict holds for new seeds, not only new
samples. ``variance_components`` splits the observed variance into the two parts (the evaluation part from
the per-prompt records, by the binomial variance of each prompt's k samples), which says whether more
prompts or more seeds would sharpen a verdict.

Planning. The minimal detectable effect (MDE) at 80% power of the family's strictest Holm level α/m, for
n seeds per method (and a control's seeds, under ``welch``) and a pilot's σ_D, the sd of the difference
between one method run and one control run (``inference.min_detectable``, ``min_detectable_welch``);
``seeds_for`` is the smallest n whose MDE is at most a target (the issue's: one third of grpo's own effect).

Intervals. A cell's interval is the t-interval of its seed means, cut to the quantity's range (rates in
[0, 1], entropies ≥ 0). The percentile bootstrap it replaces stays inside the seeds' own min..max, which
with 3–4 seeds covers a 95% target only ≈ 75–81% of the time; ``coverage`` simulates the design to check
an interval's real coverage (tests/test_compare_design.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from steerbench.analysis.compare.inference import finite, min_detectable, min_detectable_welch
from steerbench.analysis.compare.runs import col

ALPHA = 0.05
POWER = 0.8


def t_interval(
    values: Sequence[float], level: float = 0.95, low: float = -math.inf, high: float = math.inf
) -> tuple[float, float, float, int]:
    """(mean, low, high, n): mean ± t_{(1+level)/2, n−1}·s/√n over the finite values, cut to [low, high].

    NaN bounds with fewer than two values; equal values give a zero-width interval."""
    x = finite(values)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(st.t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, max(low, mean - half), min(high, mean + half), n


def pass1_eval_variance(correct: np.ndarray, k: int) -> float:
    """Var of a run's pass@1 over J prompts from one evaluation: Σ_j p̂_j(1 − p̂_j)/(k − 1) / J², with p̂_j
    the share of prompt j's k samples that are correct (the unbiased binomial variance of a mean of k)."""
    p = np.asarray(correct, dtype=float) / k
    return float((p * (1 - p)).sum() / (k - 1) / len(p) ** 2)


@dataclass(frozen=True)
class Components:
    """The variance of the paired seed differences D_s, split into training and evaluation parts."""

    n_seeds: int
    var_d: float  # sample variance of D_s over seeds
    var_eval: float  # mean evaluation variance of D_s (both runs' evaluation noise)
    var_train: float  # max(0, var_d − var_eval)

    @property
    def train_share(self) -> float:
        total = self.var_train + self.var_eval
        return self.var_train / total if total > 0 else math.nan


def variance_components(diffs: Sequence[float], eval_variances: Sequence[float]) -> Components:
    """``diffs``: D_s per seed; ``eval_variances``: Var_eval(D_s) per seed (method's + control's, since the
    two evaluations draw independent samples given their policies)."""
    d, v = finite(diffs), finite(eval_variances)
    var_d = float(d.var(ddof=1)) if len(d) > 1 else math.nan
    var_eval = float(v.mean()) if len(v) else math.nan
    return Components(len(d), var_d, var_eval, max(0.0, var_d - var_eval) if var_d == var_d else math.nan)


def mde(
    sd_diff: float,
    seeds: int,
    family: int,
    test: str = "paired",
    control_seeds: int | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """The smallest |mean difference| the design's test detects with ``power`` at Holm's strictest level
    α/family: ``seeds`` runs per method, ``control_seeds`` for its control (``welch``; default ``seeds``),
    ``sd_diff`` the sd of the difference between one method run and one control run (paired: of a paired
    seed difference; welch: √2 × each run's sd, the pilot's planning assumption of equal spreads)."""
    level = alpha / max(1, family)
    if test == "welch":
        sd = sd_diff / math.sqrt(2)
        return min_detectable_welch(sd, seeds, sd, control_seeds or seeds, level, power)
    return min_detectable(sd_diff, seeds, level, power)


def seeds_for(
    target: float,
    sd_diff: float,
    family: int,
    test: str = "paired",
    control_seeds: int | None = None,
    most: int = 64,
) -> int | None:
    """The fewest seeds per method (≥ 3) whose MDE is ≤ ``target`` (a welch control keeps at least as many);
    None if even ``most`` seeds are not enough."""
    for n in range(3, most + 1):
        if mde(sd_diff, n, family, test, max(n, control_seeds or n)) <= target:
            return n
    return None


Interval = Callable[[np.ndarray], tuple[float, float]]


def coverage(
    interval: Interval,
    seeds: int,
    prompts: int = 512,
    k: int = 16,
    sd_train: float = 0.03,
    trials: int = 2000,
    seed: int = 0,
) -> float:
    """Share of simulated designs whose interval for a cell's mean pass@1 covers the true mean.

    The simulation is the design: per-prompt difficulties fixed once (Beta(2, 3): mean 0.4, graded); each
    seed's training shifts every prompt's logit by one normal draw (sd chosen so the seed-to-seed sd of
    the mean is ≈ ``sd_train``); each run is evaluated with k binomial samples per prompt. The true cell mean
    is the expectation over seeds of the mean success probability, estimated once by many seeds."""
    rng = np.random.default_rng(seed)
    base = rng.beta(2, 3, prompts)
    logit = np.log(base / (1 - base))
    scale = sd_train / 0.2  # d mean(sigmoid)/d shift ≈ mean p(1−p) ≈ 0.2 for Beta(2, 3)

    def seed_means(count: int) -> np.ndarray:
        shift = rng.normal(0.0, scale, (count, 1))
        return 1 / (1 + np.exp(-(logit + shift)))

    truth = float(seed_means(20_000).mean())
    hits = 0
    for _ in range(trials):
        p = seed_means(seeds)
        observed = rng.binomial(k, p) / k
        lo, hi = interval(observed.mean(axis=1))
        hits += lo <= truth <= hi
    return hits / trials


ENDPOINT_NAMES = {
    "final_passk": "pass@k narrowing",
    "final_pass1": "pass@1 gain",
    "final_entropy": "entropy loss",
}


def plan_rows(
    pilot: dict[str, dict[str, float]],
    seeds: int,
    family: int,
    test: str = "paired",
    control_seeds: int | None = None,
) -> list[dict[str, float]]:
    """Per endpoint of a grid's pilot: the sd of the difference of two runs, grpo's own effect, the MDE these
    seeds give at the family's strictest level, its ratio to the effect, and the seeds that reach a third."""
    rows = []
    for endpoint, p in pilot.items():
        size = mde(p["sd"], seeds, family, test, control_seeds)
        third = seeds_for(abs(p["effect"]) / 3, p["sd"], family, test, control_seeds)
        rows.append(
            {
                "endpoint": endpoint,
                "sd": p["sd"],
                "effect": p["effect"],
                "mde": size,
                "ratio": size / abs(p["effect"]) if p["effect"] else math.inf,
                "seeds_for_a_third": third or math.nan,
            }
        )
    return rows


TEST_NAMES = {
    "paired": "paired t over seeds of prompt-paired differences",
    "welch": "Welch's t over runs (size-corrected), each run's mean over the same prompts",
}


def plan_lines(
    declared: dict, seeds: int, control_seeds: int | None = None, own_seeds: dict[str, int] | None = None
) -> list[str]:
    """What ``steerbench grid`` prints before it runs: the family, the test and the MDE of each piloted
    endpoint for ``seeds`` per method and ``control_seeds`` for the grpo control (default: ``seeds``);
    ``own_seeds``: the methods or cells (``method/scenario``) that have their own number, listed."""
    fam = declared.get("family", {})
    size = int(fam.get("size", 0))
    test = declared.get("test", "paired")
    control = f", {control_seeds} for the grpo control" if control_seeds and control_seeds != seeds else ""
    own = ", ".join(f"{k} {n}" for k, n in (own_seeds or {}).items())
    lines = [
        f"design: {seeds} seeds per method{f' ({own})' if own else ''}{control}; {TEST_NAMES.get(test, test)}; "
        "family "
        f"“{fam.get('name', '?')}”: {size} tests, Holm at α = {ALPHA}"
        + (f"; degenerate, reported apart: {', '.join(fam['degenerate'])}" if fam.get("degenerate") else "")
    ]
    for r in plan_rows(declared.get("pilot", {}), seeds, max(1, size), test, control_seeds):
        name = ENDPOINT_NAMES.get(r["endpoint"], r["endpoint"])
        lines.append(
            f"  {name}: grpo's effect {r['effect']:+.3f}, MDE ±{r['mde']:.3f} at {int(POWER * 100)}% power "
            f"({r['ratio']:.2f} of it; a third needs {r['seeds_for_a_third']:.0f} seeds)"
        )
    if declared.get("source"):
        lines.append(f"  pilot: {declared['source']}")
    return lines


def grpo_effects(frame: pd.DataFrame) -> pd.DataFrame:
    """grpo's own effect per run (the size of what the instrument must resolve): pass@1 gain and pass@k
    change (last − first evaluation; the first is the warm start's) and the share of token entropy lost
    (1 − last / first ``entropy/mean``), one row per grpo run, by task, scenario, variant and seed."""
    rows = []
    for run, df in frame[frame["method"] == "grpo"].groupby("run", sort=True):
        df = df.sort_values("step")
        first = df.iloc[0]
        p1, pk, h = (
            col(df, "val/pass@1").dropna(),
            col(df, "val/pass@k").dropna(),
            col(df, "entropy/mean").dropna(),
        )
        rows.append(
            {
                **{c: first[c] for c in ("task", "scenario", "variant", "seed")},
                "pass1_start": p1.iloc[0] if len(p1) else math.nan,
                "pass1_gain": p1.iloc[-1] - p1.iloc[0] if len(p1) > 1 else math.nan,
                "passk_start": pk.iloc[0] if len(pk) else math.nan,
                "passk_change": pk.iloc[-1] - pk.iloc[0] if len(pk) > 1 else math.nan,
                "entropy_loss": 1 - h.iloc[-1] / h.iloc[0] if len(h) > 1 and h.iloc[0] > 0 else math.nan,
                "final_pass1": p1.iloc[-1] if len(p1) else math.nan,
                "final_passk": pk.iloc[-1] if len(pk) else math.nan,
                "final_entropy": h.iloc[-1] if len(h) else math.nan,
                "run": run,
            }
        )
    if not rows:
        return pd.DataFrame(rows)
    return pd.DataFrame(rows).sort_values(
        ["task", "scenario", "variant", "seed"], kind="stable", ignore_index=True
    )


# a testbed where RL visibly helps and visibly narrows (issue 23, item 1): what grpo must do on every seed
VISIBLE = {"pass1_gain": 0.10, "entropy_loss": 0.50, "passk_change": -0.15}


def visible_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """Per task × scenario × variant: grpo's seeds, how many raise pass@1 by ≥ 0.10, lose ≥ 50% of their
    entropy and end with pass@k ≥ 0.15 below the warm start's (``VISIBLE``), and how many meet all three."""
    met = pd.DataFrame(
        {
            "pass1_gain": effects["pass1_gain"] >= VISIBLE["pass1_gain"],
            "entropy_loss": effects["entropy_loss"] >= VISIBLE["entropy_loss"],
            "passk_change": effects["passk_change"] <= VISIBLE["passk_change"],
        }
    )
    met["all"] = met.all(axis=1)
    keys = effects[["task", "scenario", "variant"]]
    return (
        pd.concat([keys, met], axis=1)
        .groupby(["task", "scenario", "variant"], sort=False)
        .agg(seeds=("all", "size"), **{c: (c, "sum") for c in (*VISIBLE, "all")})
        .reset_index()
    )


# each verdict endpoint and the column of grpo_effects that is grpo's own change in it
OWN_CHANGE = {"final_pass1": "pass1_gain", "final_passk": "passk_change", "final_entropy": "entropy_change"}


def _with_entropy_change(effects: pd.DataFrame) -> pd.DataFrame:
    """``effects`` plus the entropy change in nats (final − first, from the final value and the share lost)."""
    return effects.assign(entropy_change=effects["final_entropy"] * (1 - 1 / (1 - effects["entropy_loss"])))


def own_effects(effects: pd.DataFrame) -> dict[tuple, dict[str, float]]:
    """grpo's mean effect per (task, scenario, variant), per verdict endpoint (entropy: the change in nats):
    the size a comparison in that cell must resolve."""
    e = _with_entropy_change(effects)
    return {
        key: {endpoint: float(g[change].mean()) for endpoint, change in OWN_CHANGE.items()}
        for key, g in e.groupby(["task", "scenario", "variant"], sort=True)
    }


def pilot(effects: pd.DataFrame) -> dict[str, dict[str, float]]:
    """A grid's ``design.pilot`` from grpo's seeds: per endpoint, the sd of a paired seed difference between
    two cells, taken as √2 × grpo's seed-to-seed sd of the final value (pooled within task × scenario ×
    variant; two independent trainings, and pairing by seed can only lower it), and grpo's mean effect on
    it (entropy: the change in nats)."""
    e = _with_entropy_change(effects)
    groups = e.groupby(["task", "scenario", "variant"], sort=True)
    out = {}
    for endpoint, change in OWN_CHANGE.items():
        pooled = groups[endpoint].var(ddof=1).dropna().mean()
        out[endpoint] = {"sd": math.sqrt(2 * pooled), "effect": float(e[change].mean())}
    return out
