"""Each method against its matched control: the grpo cell whose config is identical except for the
method's own knobs, paired by seed or as two samples of runs (the family's ``test``).

A method's own knobs are ``method.name``, the ``method.*`` keys grpo does not have, and the clipping knobs
that are its mechanism (the registry's ``MethodSpec.own_clipping``: clip_higher's ε_high, clip_cov's
recipe; contract C1). Every other key — scenario, task, model, trainer, and shared loss knobs such as
every other method's clipping — must be equal; bookkeeping keys that cannot change a run's numbers are
ignored. When no grpo cell matches, the verdict names the nearest one and the keys in which it differs,
and runs no test.

For a matched pair of cells and a statistic (``VERDICT_STATS``), under the ``paired`` test d = method −
control per shared seed: mean d with its paired t-interval (clipped to [−1, 1] for rates), the paired
t-test's p, the exact sign-flip p and Cohen's d_z; under ``welch``, the method's runs against all the
control's runs: the difference of means with Welch's interval and Welch's size-corrected p
(``inference.welch_t``), the permutation test's p and Cohen's d. Either way the smallest difference
detectable with 80% power at level α/m (Holm's strictest step), from the spreads these runs show. Only the family's primary endpoint is Holm-corrected, over a
family of m tests fixed before the runs (``Family``; a grid declares it), degenerate comparisons
(``degenerate.py``) left out, so the same runs get the same corrected p in every report that holds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from steerbench.analysis.compare import degenerate, inference
from steerbench.analysis.compare.runs import CELL
from steerbench.analysis.compare.summary import RATES, sort_cells
from steerbench.comparisons import BOOKKEEPING, CONTROL, TESTS, same_config
from steerbench.methods import MethodError, get_method

VERDICT_STATS = {"final_entropy": "final entropy", "final_pass1": "pass@1", "final_passk": "pass@k"}
ALPHA = 0.05
POWER = 0.8
_MISSING = object()


def own_clipping(method: str) -> tuple[str, ...]:
    """The clipping knobs that are ``method``'s mechanism; none for a method this install does not know."""
    try:
        return get_method(method).own_clipping
    except MethodError:
        return ()


def differing_keys(method_cfg: dict[str, Any], control_cfg: dict[str, Any], method: str) -> list[str]:
    """Flattened config keys in which a ``method`` run and a grpo run differ beyond the method's knobs."""
    if not method_cfg or not control_cfg:
        return ["(config.yaml missing)"]
    mine = {k for k in method_cfg if k.startswith("method.")}
    theirs = {k for k in control_cfg if k.startswith("method.")}
    own = {"method.name"} | (mine ^ theirs) | {f"method.{knob}" for knob in own_clipping(method)}
    keys = (set(method_cfg) | set(control_cfg)) - own - set(BOOKKEEPING)
    return sorted(k for k in keys if method_cfg.get(k, _MISSING) != control_cfg.get(k, _MISSING))


def _cell_config(cell: pd.DataFrame, configs: dict[str, dict]) -> dict[str, Any]:
    return configs.get(cell.sort_values("seed")["run"].iloc[0], {})


def _pick_control(key: tuple, cell: pd.DataFrame, controls: dict[tuple, pd.DataFrame], configs) -> tuple:
    """(control key, differing keys) of the best grpo cell: matched first, then the nearest."""
    task, scenario, method, _variant, backend = key
    mine = _cell_config(cell, configs)
    best: tuple | None = None
    for ck, cdf in controls.items():
        if ck[4] != backend:
            continue
        diff = differing_keys(mine, _cell_config(cdf, configs), method)
        shared = len(set(cell["seed"]) & set(cdf["seed"]))
        rank = (bool(diff), ck[1] != scenario, ck[0] != task, len(diff), -shared, str(ck[3]))
        if best is None or rank < best[0]:
            best = (rank, ck, diff)
    return (best[1], best[2]) if best else (None, [])


RESULT_KEYS = ("n", "n_control", "diff", "diff_low", "diff_high", "p", "p_exact", "dz", "sd", "sd_control")


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


def _paired(stat: str, cell: pd.DataFrame, control: pd.DataFrame) -> dict[str, float]:
    both = cell.set_index("seed")[stat].to_frame("m").join(control.set_index("seed")[stat].to_frame("c"))
    d = (both["m"] - both["c"]).dropna().to_numpy(dtype=float)
    p, lo, hi = inference.paired_t(d)
    return {
        "n": len(d),
        "n_control": len(d),
        "diff": float(d.mean()) if len(d) else math.nan,
        "diff_low": lo,
        "diff_high": hi,
        "p": p,
        "p_exact": inference.sign_flip_p(d),
        "dz": inference.cohens_dz(d),
        "sd": _sd(d),  # of the paired differences
        "sd_control": math.nan,
    }


def _welch(stat: str, cell: pd.DataFrame, control: pd.DataFrame) -> dict[str, float]:
    x, c = inference.finite(cell[stat].tolist()), inference.finite(control[stat].tolist())
    p, lo, hi = inference.welch_t(x, c)
    return {
        "n": len(x),
        "n_control": len(c),
        "diff": float(x.mean() - c.mean()) if len(x) and len(c) else math.nan,
        "diff_low": lo,
        "diff_high": hi,
        "p": p,
        "p_exact": inference.permutation_p(x, c),
        "dz": inference.cohens_d(x, c),
        "sd": _sd(x),  # of the method's runs
        "sd_control": _sd(c),
    }


def compare_cells(stat: str, cell: pd.DataFrame, control: pd.DataFrame, test: str) -> dict[str, float]:
    """The ``RESULT_KEYS`` of one statistic: a method's cell against its control under ``test``."""
    res = (_welch if test == "welch" else _paired)(stat, cell, control)
    if stat in RATES:  # a difference of two rates lies in [−1, 1]
        res["diff_low"], res["diff_high"] = max(res["diff_low"], -1.0), min(res["diff_high"], 1.0)
    return res


def detectable(res: dict[str, float], test: str, alpha: float, power: float = POWER) -> float:
    """The smallest difference the comparison's test detects with ``power`` at level α, from its spreads."""
    n, n_control = int(res.get("n", 0) or 0), int(res.get("n_control", 0) or 0)
    if test == "welch":
        return inference.min_detectable_welch(res["sd"], n, res["sd_control"], n_control, alpha, power)
    return inference.min_detectable(res.get("sd", math.nan), n, alpha, power)


@dataclass(frozen=True)
class Family:
    """The multiple-testing family of a report, fixed before the runs: one primary endpoint, tested for every
    non-degenerate comparison, Holm-corrected over ``size`` tests (a grid declares it; ``None``: the
    comparisons present). Secondary endpoints get intervals and uncorrected p-values, never a verdict."""

    name: str = "the comparisons present"
    primary: str = "final_passk"
    size: int | None = None
    test: str = TESTS[0]  # paired by seed, or two samples of runs (Welch)


def _degenerate(key: tuple, cell: pd.DataFrame, cells: dict, ck: tuple | None, configs, prints) -> str:
    if ck is None:
        return ""
    if same_config(_cell_config(cell, configs), _cell_config(cells[ck], configs)):
        return f"the same config as its control ({CONTROL})"
    if degenerate.identical_runs(cell, cells[ck], prints):
        return f"identical runs to its control ({CONTROL})"
    for other_key, other in cells.items():
        if other_key == key:
            break  # only an earlier cell (report order) names this one its twin
        same_place = other_key[0] == key[0] and other_key[1] == key[1] and other_key[4] == key[4]
        if other_key[2] != CONTROL and same_place and degenerate.identical_runs(cell, other, prints):
            return f"identical runs to {other_key[2]}" + (f" [{other_key[3]}]" if other_key[3] else "")
    return ""


def verdicts(
    per_run: pd.DataFrame,
    configs: dict[str, dict],
    family: Family | None = None,
    prints: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per non-grpo cell: its control (``control_variant``, ``matched``, ``differs``), ``pairs``,
    ``degenerate`` (a reason, or ""), and for each statistic s of ``VERDICT_STATS``: ``s_n`` (paired: pairs with
    both values; welch: the method's runs) and ``s_n_control``, ``s_diff``, ``s_diff_low``, ``s_diff_high``,
    ``s_p``, ``s_p_exact``, ``s_dz``, ``s_sd``, ``s_sd_control``, ``s_mdd`` (NaN where no matched control or
    < 2 runs) and ``s_p_holm``: Holm over the family, for the primary endpoint of a
    non-degenerate comparison only (NaN otherwise). ``prints``: run → ``degenerate.fingerprints``."""
    family = family or Family()
    cells = {key: df for key, df in sort_cells(per_run).groupby(CELL, sort=False)}
    controls = {k: df for k, df in cells.items() if k[2] == CONTROL}
    rows = []
    for key, cell in cells.items():
        if key[2] == CONTROL:
            continue
        row: dict[str, Any] = dict(zip(CELL, key, strict=True))
        ck, diff = _pick_control(key, cell, controls, configs)
        row["control_variant"] = ck[3] if ck else None
        row["control_scenario"] = ck[1] if ck else None
        row["matched"] = ck is not None and not diff
        row["differs"] = ", ".join(diff)
        row["pairs"] = len(set(cell["seed"]) & set(controls[ck]["seed"])) if ck else 0
        row["degenerate"] = _degenerate(key, cell, cells, ck, configs, prints or {}) if row["matched"] else ""
        for stat in VERDICT_STATS:
            res = compare_cells(stat, cell, controls[ck], family.test) if row["matched"] else {}
            for k in RESULT_KEYS:
                row[f"{stat}_{k}"] = res.get(k, math.nan)
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    tested = (out["degenerate"] == "") & out[f"{family.primary}_p"].notna()
    size = max(family.size or 0, int(tested.sum()), 1)
    for stat in VERDICT_STATS:
        out[f"{stat}_p_holm"] = math.nan
        out[f"{stat}_mdd"] = [
            detectable({k: r[f"{stat}_{k}"] for k in RESULT_KEYS}, family.test, ALPHA / size)
            for _, r in out.fillna({f"{stat}_n": 0, f"{stat}_n_control": 0}).iterrows()
        ]
    out.loc[tested, f"{family.primary}_p_holm"] = holm_of_family(out.loc[tested, f"{family.primary}_p"], size)
    out["family"] = family.name
    out["family_size"] = size
    out["primary"] = family.primary
    out["test"] = family.test
    return sort_cells(out)


def holm_of_family(pvalues: pd.Series, size: int) -> list[float]:
    """Holm over a family of ``size`` tests of which these ran: the ones that did not count as p = 1, so
    the correction does not shrink when some cells of a declared family are missing."""
    padded = [*pvalues.tolist(), *([1.0] * (size - len(pvalues)))]
    return inference.holm(padded)[: len(pvalues)]


def separates(row: pd.Series, stat: str) -> bool:
    """The corrected test of the family's primary endpoint says the method differs from its control
    (a secondary endpoint never separates: its p-value is not corrected)."""
    p = row.get(f"{stat}_p_holm", math.nan)
    return bool(p == p and p < ALPHA)
