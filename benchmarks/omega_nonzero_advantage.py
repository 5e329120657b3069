"""Each estimator's agreement with the measured ΔH over the tokens with A ≠ 0, from validate-omega outputs.

    python benchmarks/omega_nonzero_advantage.py DIR [DIR ...]      # DIR: a validate-omega --out folder

On a task the warm start solves 3% of the time most groups have no reward variance, so most tokens have
A = 0, Ω = 0 and a small measured ΔH from the shared parameters: their sign "agreement" is 0 by
construction and drags the all-token numbers. Over A ≠ 0 the numbers say how well each estimator ranks the
tokens the policy gradient acts on. Prints the report's all-token line, the A ≠ 0 line and steer_release's
quadrants.
"""

import json
import sys

import pandas as pd
from scipy import stats

for name in sys.argv[1:]:
    r = json.load(open(f"{name}/summary.json"))
    s = r["setup"]
    print(name, {k: s.get(k) for k in ("task", "tokens", "rewards", "mean_reward", "source")})
    for est, e in r["estimators"].items():
        ci = e.get("ci", {}).get("pearson")
        print(
            f"  all  {est:14s} pearson {e['pearson']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] spearman {e['spearman']:.3f} sign {e['sign_agreement']:.3f}"
        )
    t = pd.read_parquet(f"{name}/tokens.parquet")
    nz = t[t.advantage != 0]
    print("  A != 0 tokens:", len(nz), "of", len(t))
    for est in ["steer_release", "steer_paper", "softmax_full", "cov", "jvp"]:
        x, y = nz[f"pred_{est}"], nz["measured"]
        print(
            f"  A≠0  {est:14s} pearson {stats.pearsonr(x, y)[0]:.3f} spearman {stats.spearmanr(x, y)[0]:.3f} sign {((x > 0) == (y > 0)).mean():.3f}"
        )
    for k, v in r["estimators"]["steer_release"]["by_quadrant"].items():
        print(
            "  quadrant",
            k,
            {
                kk: (round(vv, 3) if isinstance(vv, float) else vv)
                for kk, vv in v.items()
                if kk in ("n", "pearson", "spearman", "sign_agreement")
            },
        )
