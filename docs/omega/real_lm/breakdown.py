"""Breakdowns of validate-omega outputs that the report does not print (docs/omega_validation.md, real LM).

    python docs/omega/real_lm/breakdown.py docs/omega/real_lm/gsm8k_sgd docs/omega/real_lm/arith_sgd ...

Per run directory (summary.json + tokens.parquet): groups with reward variance (any A != 0 in a group of
group_size consecutive sequences), each estimator over the A != 0 tokens (the report's all-token sign
agreement counts every A = 0 token as a disagreement, since Ω = 0 there), steer_release by response
position and by response length, and how well |Ω| (what STEER's weights depend on) ranks |ΔH| compared
with the token's own entropy H (Spearman, with a 95% bootstrap CI over sequences for |Ω|), and steer_release's
sign agreement over A != 0 with a 95% CI over sequences against the agreement of independent signs.
"""

import json
import sys

import numpy as np
import pandas as pd
from scipy import stats

EST = ["steer_release", "steer_paper", "softmax_full", "cov", "jvp"]


def sign_agreement(x: pd.Series, y: pd.Series) -> float:
    m = y != 0
    return float((np.sign(x[m]) == np.sign(y[m])).mean())


for name in sys.argv[1:]:
    r = json.load(open(f"{name}/summary.json"))
    s = r["setup"]
    t = pd.read_parquet(f"{name}/tokens.parquet")
    t = t[t.lr == s["lr"]].copy()
    print(f"== {name}: {s['tokens']} tokens, {s['sequences']} sequences, rewards: {s['rewards']}")
    t["group"] = t.sequence // s["group_size"]
    var = t.groupby(["batch", "group"]).advantage.apply(lambda a: bool((a != 0).any()))
    print(f"  groups with reward variance: {var.sum()} / {len(var)} = {var.mean():.3f}")
    t["length"] = t.groupby(["batch", "sequence"]).position.transform("max") + 1
    print(f"  response length: median {t.groupby(['batch', 'sequence']).length.first().median():.0f}")
    nz = t[t.advantage != 0]
    print(f"  A != 0: {len(nz)} of {len(t)} tokens")
    for est in EST:
        x, y = nz[f"pred_{est}"], nz.measured
        print(
            f"    {est:14s} pearson {stats.pearsonr(x, y)[0]:.3f} spearman {stats.spearmanr(x, y)[0]:.3f} "
            f"sign agreement {sign_agreement(x, y):.3f}"
        )
    for col, bins in (("position", [0, 4, 16, 32, 64, 10**6]), ("length", [0, 8, 32, 64, 10**6])):
        for b, sub in nz.groupby(pd.cut(nz[col], bins, right=False), observed=True):
            if len(sub) >= 10:
                x, y = sub.pred_steer_release, sub.measured
                print(
                    f"  steer_release, {col} {str(b):14s} n {len(sub):5d} pearson {stats.pearsonr(x, y)[0]:.3f} "
                    f"sign agreement {sign_agreement(x, y):.3f} mean |ΔH| {y.abs().mean():.2e}"
                )
    a, m = nz.pred_steer_release.abs().values, nz.measured.abs().values
    keys = nz.groupby(["batch", "sequence"]).ngroup().values
    rng, uk, boot = np.random.default_rng(0), np.unique(keys), []
    rows = {k: np.where(keys == k)[0] for k in uk}
    for _ in range(200):
        idx = np.concatenate([rows[k] for k in rng.choice(uk, len(uk))])
        boot.append(stats.spearmanr(a[idx], m[idx])[0])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    sx, sy = np.sign(nz.pred_steer_release.values), np.sign(nz.measured.values)
    keep = sy != 0
    same = sx[keep] == sy[keep]
    kk = keys[keep]
    krows = {k: np.where(kk == k)[0] for k in np.unique(kk)}
    sboot = [
        same[np.concatenate([krows[k] for k in rng.choice(list(krows), len(krows))])].mean()
        for _ in range(500)
    ]
    px, py = (sx[keep] > 0).mean(), (sy[keep] > 0).mean()
    slo, shi = np.percentile(sboot, [2.5, 97.5])
    print(
        f"  steer_release sign agreement (A != 0) {same.mean():.3f} [{slo:.3f}, {shi:.3f}] (95% CI over sequences); "
        f"independent signs with the same marginals: {px * py + (1 - px) * (1 - py):.3f}"
    )
    top = a >= np.quantile(a, 0.75)
    print(
        f"  |ΔH| ranked by |steer_release| spearman {stats.spearmanr(a, m)[0]:.3f} [{lo:.3f}, {hi:.3f}], "
        f"by |softmax_full| {stats.spearmanr(nz.pred_softmax_full.abs(), m)[0]:.3f}, "
        f"by H alone {stats.spearmanr(nz.entropy, m)[0]:.3f}; top quarter by |Ω| holds "
        f"{m[top].sum() / m.sum():.2f} of Σ|ΔH|"
    )
