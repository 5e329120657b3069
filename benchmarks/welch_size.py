"""How often Welch's t rejects a true null at a family's level, by simulation (issue 23, the paper's design).

    python benchmarks/welch_size.py [--trials 400000] [--family 22] [--report docs/paper_report]

Prints, for a method's n runs against a shared control's, the rejection rate over nominal α/family of
Welch's t (scipy), of the size-corrected Welch test `steerbench compare` uses (``inference.welch_t``: p* ≤ α
exactly when Welch's p ≤ ``welch_level(α)``), with its exact worst case over the variance share, and of
the parametric-bootstrap test for unequal variances (Krishnamoorthy, Lu & Mathew 2007: |T| against the
simulated null distribution of T* with the observed variance share plugged in; its thresholds are taken on
a grid of variance shares and interpolated), and Welch's rate at α = 0.05. With ``--report``, also the
family-wise error of that report's family under the global null, Holm over its tests, each scenario's
methods sharing one control, at the spreads and run counts in its verdicts.csv, for Welch's p and the
size-corrected p. The numbers in benchmarks/RESULTS.md (Waves 10 and 11) and docs/paper_report/README.md
come from this script.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats as st

from steerbench.analysis.compare.inference import welch_level, welch_worst_size

# (method runs, control runs, method sd, control sd): the paper's allocation over the spreads it showed
CASES = [
    (8, 16, 0.04, 0.05),
    (8, 16, 0.05, 0.05),
    (8, 16, 0.08, 0.05),
    (12, 16, 0.09, 0.05),
    (8, 8, 0.05, 0.05),
]
SHARES = np.linspace(0.005, 0.995, 67)


def bootstrap_thresholds(n_x: int, n_c: int, alpha: float, replicates: int, rng) -> np.ndarray:
    """|T*|'s 1 − α quantile under the null for each method variance share r of SHARES (scale-free)."""
    out = []
    for share in SHARES:
        z = rng.standard_normal(replicates)
        v_x = share * rng.chisquare(n_x - 1, replicates) / (n_x - 1)
        v_c = (1 - share) * rng.chisquare(n_c - 1, replicates) / (n_c - 1)
        out.append(np.quantile(np.abs(z / np.sqrt(v_x + v_c)), 1 - alpha))
    return np.asarray(out)


def family_wise_error(report: Path, trials: int, rng) -> tuple[float, float, int]:
    """P(Holm rejects any of the family's tests) when no method differs from its control, with Welch's p and
    with the size-corrected p, and the family's size."""
    import pandas as pd

    v = pd.read_csv(report / "verdicts.csv")
    v = v[v["final_passk_p_holm"].notna()]
    size = int(v["family_size"].iloc[0])
    alpha = 0.05 / size  # Holm rejects something iff its first step does
    welch, corrected = np.zeros(trials, bool), np.zeros(trials, bool)
    for _, cell in v.groupby("scenario"):
        first = cell.iloc[0]
        n_c = int(first["final_passk_n_control"])
        control = rng.normal(0, first["final_passk_sd_control"], (trials, n_c))
        for _, r in cell.iterrows():
            n_x = int(r["final_passk_n"])
            runs = rng.normal(0, r["final_passk_sd"], (trials, n_x))
            p = st.ttest_ind(runs, control, axis=1, equal_var=False).pvalue
            welch |= p < alpha
            corrected |= p <= welch_level(alpha, n_x, n_c)
    return float(welch.mean()), float(corrected.mean()), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400_000)
    parser.add_argument("--family", type=int, default=22)
    parser.add_argument("--report", type=Path, help="a compare report whose family was tested with Welch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    alpha = 0.05 / args.family
    print(f"rejection rate / nominal under a true null, α = 0.05/{args.family}; {args.trials} trials per row")
    print("n_x  n_c  sd_x/sd_c   Welch   corrected (worst)   bootstrap   Welch at α = 0.05")
    for n_x, n_c, sd_x, sd_c in CASES:
        x, c = rng.normal(0, sd_x, (args.trials, n_x)), rng.normal(0, sd_c, (args.trials, n_c))
        p = st.ttest_ind(x, c, axis=1, equal_var=False).pvalue
        v_x, v_c = x.var(1, ddof=1) / n_x, c.var(1, ddof=1) / n_c
        t = (x.mean(1) - c.mean(1)) / np.sqrt(v_x + v_c)
        threshold = np.interp(
            v_x / (v_x + v_c), SHARES, bootstrap_thresholds(n_x, n_c, alpha, args.trials, rng)
        )
        level = welch_level(alpha, n_x, n_c)
        worst = welch_worst_size(level, n_x, n_c) / alpha
        print(
            f"{n_x:>3}  {n_c:>3}  {sd_x / sd_c:>9.2f}   {(p < alpha).mean() / alpha:5.2f}"
            f"   {(p <= level).mean() / alpha:9.2f} ({worst:.2f})"
            f"   {(np.abs(t) > threshold).mean() / alpha:9.2f}   {(p < 0.05).mean() / 0.05:17.2f}"
        )
    if args.report:
        welch, corrected, size = family_wise_error(args.report, args.trials // 10, rng)
        print(
            f"{args.report}: family-wise error under the global null (nominal 0.05, {size} tests): "
            f"Welch's p {welch:.4f}, size-corrected p {corrected:.4f}"
        )


if __name__ == "__main__":
    main()
