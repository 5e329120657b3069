"""verl's file-logger JSONL → the run store's ``metrics.jsonl`` with steerbench's stable metric names.

verl (``trainer.logger=[...,file]``) writes one line per step, ``{"step": N, "data": {metric: value}}``,
to ``$VERL_FILE_LOGGER_PATH``, opening it in truncate mode. The launcher therefore gives every attempt
its own file (``<run>/verl_logs/attempt-000.jsonl``, ``attempt-001.jsonl``, ...). Import merges them by
step; where two attempts logged the same step, the later attempt wins (it resumed from a checkpoint and
re-ran that step). Validation lines share the step of the training line and are merged into it.

Names (``KEY_MAP``); the raw verl keys are kept too, under ``verl/<key>``:

    entropy/mean        actor/entropy             π_old's full-vocab token entropy on this step's rollouts
    clip/frac_high      actor/clip/frac_high      (steerbench losses) else actor/pg_clipfrac (verl: all clipping)
    clip/frac_low       actor/clip/frac_low       (steerbench losses) else actor/pg_clipfrac_lower (verl: dual clip)
    reward/mean         critic/score/mean
    acc/train           critic/score/mean mapped to [0, 1] when scores are ±1 (the steerbench reward)
    val/pass@1          mean over data sources of val-core/<ds>/acc/mean@N (largest N); per source too
    len/response_mean   response_length/mean
    time/step_s         timing_s/step
    throughput/tokens_per_s  perf/throughput
    kl/mean             actor/kl_loss
    steer/..., omega/..., cov/..., posadv/..., loss/pg   our loss metrics, verl-prefixed actor/<name>
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from steerbench.runstore import atomic_write_bytes

KEY_MAP: dict[str, tuple[str, ...]] = {
    "entropy/mean": ("actor/entropy",),
    "clip/frac_high": ("actor/clip/frac_high", "actor/pg_clipfrac"),
    "clip/frac_low": ("actor/clip/frac_low", "actor/pg_clipfrac_lower"),
    "clip/frac_dual": ("actor/clip/frac_dual",),
    "reward/mean": ("critic/score/mean",),
    "len/response_mean": ("response_length/mean",),
    "time/step_s": ("timing_s/step",),
    "throughput/tokens_per_s": ("perf/throughput",),
    "kl/mean": ("actor/kl/mean", "actor/kl_loss"),
    "loss/pg": ("actor/loss/pg", "actor/pg_loss"),
    "grad/norm": ("actor/grad_norm",),
}
OUR_PREFIXES = ("steer/", "omega/", "cov/", "posadv/", "entropy/bonus_term", "ratio/")
_VAL_CORE = re.compile(r"^val-core/(?P<ds>.+)/(?P<var>acc|reward)/mean@(?P<n>\d+)$")


def read_verl_log(path: str | os.PathLike[str]) -> dict[int, dict[str, Any]]:
    """step → merged metrics of one file-logger JSONL (a truncated last line is skipped)."""
    steps: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if not isinstance(rec, dict) or "step" not in rec:
                continue
            data = rec.get("data", {})
            steps.setdefault(int(rec["step"]), {}).update(data if isinstance(data, dict) else {})
    return steps


def merge_attempts(paths: Iterable[str | os.PathLike[str]]) -> dict[int, dict[str, Any]]:
    """Merge attempts in the given order (oldest first): a later attempt's step replaces an earlier one's."""
    merged: dict[int, dict[str, Any]] = {}
    for path in paths:
        for step, data in read_verl_log(path).items():
            merged[step] = data
    return merged


def _finite(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)) and math.isfinite(float(x)):
        return float(x)
    return None


def translate(data: dict[str, Any], *, score_scale: str = "pm1") -> dict[str, float]:
    """One step's verl metrics → steerbench keys (plus every numeric raw key under ``verl/``)."""
    out: dict[str, float] = {}
    for ours, candidates in KEY_MAP.items():
        for key in candidates:
            value = _finite(data.get(key))
            if value is not None:
                out[ours] = value
                break
    if "reward/mean" in out:
        r = out["reward/mean"]
        out["acc/train"] = (r + 1.0) / 2.0 if score_scale == "pm1" else r
    best_n: dict[str, tuple[int, str, float]] = {}
    for key, raw in data.items():
        m = _VAL_CORE.match(key)
        value = _finite(raw)
        if m is None or value is None:
            continue
        ds, var, n = m["ds"], m["var"], int(m["n"])
        if var == "reward" and score_scale == "pm1":
            value = (value + 1.0) / 2.0
        prev = best_n.get(ds)
        if prev is None or n > prev[0] or (n == prev[0] and var == "acc"):
            best_n[ds] = (n, var, value)
    for ds, (_, _, value) in sorted(best_n.items()):
        out[f"val/pass@1/{ds}"] = value
    if best_n:
        out["val/pass@1"] = sum(v for _, _, v in best_n.values()) / len(best_n)
    for key, raw in data.items():
        value = _finite(raw)
        if value is None:
            continue
        short = key[len("actor/") :] if key.startswith("actor/") else None
        if short and short.startswith(OUR_PREFIXES):
            out[short] = value
        out[f"verl/{key}"] = value
    return out


def attempt_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    return sorted((Path(run_dir) / "verl_logs").glob("attempt-*.jsonl"))


def import_verl_logs(
    paths: Iterable[str | os.PathLike[str]] | None,
    run_dir: str | os.PathLike[str],
    *,
    score_scale: str = "pm1",
) -> int:
    """Write ``<run_dir>/metrics.jsonl`` (atomically) from verl attempt logs; returns the number of steps.

    ``paths`` oldest attempt first; ``None`` reads ``<run_dir>/verl_logs/attempt-*.jsonl`` in order.
    ``score_scale``: "pm1" when the reward is ±1 (steerbench's default), "01" for 0/1.
    """
    files = attempt_files(run_dir) if paths is None else [Path(p) for p in paths]
    merged = merge_attempts(files)
    lines = (
        json.dumps({"step": int(step), **translate(merged[step], score_scale=score_scale)}) + "\n"
        for step in sorted(merged)
    )
    atomic_write_bytes(Path(run_dir) / "metrics.jsonl", "".join(lines).encode())
    return len(merged)
