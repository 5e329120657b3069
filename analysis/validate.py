"""Ω validation over several rollout batches: per-token table, statistics per estimator, lr sweep, outputs.

``validate`` runs :func:`steerbench.analysis.omega.measure_entropy_change` on every batch (each from
the same starting policy), stacks the per-token results into one table and summarises each estimator
with :func:`steerbench.analysis.stats.summarize`. ``write_outputs`` writes ``tokens.parquet``,
``summary.json`` and the figures (``steerbench.analysis.omega_plots``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from steerbench.analysis.estimators import ESTIMATORS, SCALE_FREE
from steerbench.analysis.omega import (
    RolloutBatch,
    StepResult,
    check_options,
    measure_entropy_change,
    quadrant_labels,
)
from steerbench.analysis.stats import json_safe, summarize
from steerbench.runstore import atomic_write

Progress = Callable[[str], None]


def step_frame(res: StepResult, batch_id: int, lr: float) -> pd.DataFrame:
    """Valid response tokens of one measured step as rows (one column per estimator: ``pred_<name>``)."""
    m = res.response_mask
    B, T = m.shape
    seq = torch.arange(B)[:, None].expand(B, T)
    pos = torch.arange(T)[None, :].expand(B, T)
    cols: dict[str, Any] = {
        "batch": np.full(int(m.sum()), batch_id, dtype=np.int64),
        "sequence": (seq[m] + batch_id * 1_000_000).numpy(),
        "position": pos[m].numpy(),
        "lr": np.full(int(m.sum()), lr),
        "measured": res.measured[m].numpy(),
        "advantage": res.advantages[m].numpy(),
        "log_prob": res.log_prob[m].numpy(),
        "prob": res.log_prob[m].exp().numpy(),
        "entropy": res.entropy[m].numpy(),
    }
    cols["quadrant"] = quadrant_labels(res.advantages[m], res.log_prob[m], res.entropy[m])
    for name, pred in res.predicted.items():
        cols[f"pred_{name}"] = pred[m].numpy()
    return pd.DataFrame(cols)


def summarize_frame(frame: pd.DataFrame, estimators: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    return {
        name: summarize(
            frame[f"pred_{name}"].to_numpy(),
            frame["measured"].to_numpy(),
            frame["sequence"].to_numpy(),
            frame["batch"].to_numpy(),
            frame["quadrant"].tolist(),
            n_boot=n_boot,
            seed=seed,
        )
        for name in estimators
    }


def first_order_error(frame: pd.DataFrame, name: str) -> dict[str, float]:
    """‖y − x‖/‖y‖ (raw), ‖y − b·x‖/‖y‖ with the best scale b (for scale-free estimators), Pearson."""
    x = frame[f"pred_{name}"].to_numpy(np.float64)
    y = frame["measured"].to_numpy(np.float64)
    ny = float(np.linalg.norm(y))
    xx = float(x @ x)
    b = float(x @ y) / xx if xx > 0 else 0.0
    pear = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else math.nan
    return {
        "rel_error": float(np.linalg.norm(y - x)) / ny if ny > 0 else math.nan,
        "rel_error_scaled": float(np.linalg.norm(y - b * x)) / ny if ny > 0 else math.nan,
        "best_scale": b,
        "pearson": pear,
        "measured_abs_mean": float(np.abs(y).mean()),
    }


def validate(
    model: nn.Module,
    batches: Sequence[RolloutBatch],
    method: str = "grpo",
    optimizer: str = "sgd",
    lr: float = 1e-4,
    lrs: Sequence[float] = (),
    estimators: Sequence[str] = tuple(ESTIMATORS),
    temperature: float = 1.0,
    knobs: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
    n_boot: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
    setup: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-token table at ``lr`` and the report ``{"estimators": ..., "setup": ..., "lr_sweep": ...}``."""
    check_options(optimizer, lr, estimators, temperature)
    for x in lrs:
        check_options(optimizer, x, estimators, temperature)

    def measure_all(step_lr: float) -> pd.DataFrame:
        frames = []
        for i, batch in enumerate(batches):
            res = measure_entropy_change(
                model, batch, method, optimizer, step_lr, temperature, estimators, knobs, dtype=dtype
            )
            frames.append(step_frame(res, i, step_lr))
            if progress:
                progress(f"lr={step_lr:g} batch {i + 1}/{len(batches)}")
        return pd.concat(frames, ignore_index=True)

    frame = measure_all(lr)
    report: dict[str, Any] = {"estimators": summarize_frame(frame, estimators, n_boot, seed)}
    sweep: dict[str, Any] = {}
    for x in lrs:
        f = frame if x == lr else measure_all(x)
        sweep[f"{x:g}"] = {name: first_order_error(f, name) for name in estimators}
    report["lr_sweep"] = sweep
    report["setup"] = {
        "method": method,
        "optimizer": optimizer,
        "lr": lr,
        "lrs": list(lrs),
        "estimators": list(estimators),
        "scale_free": [e for e in estimators if e in SCALE_FREE],
        "temperature": temperature,
        "dtype": str(dtype).replace("torch.", ""),
        "batches": len(batches),
        "tokens": len(frame),
        "sequences": int(frame["sequence"].nunique()),
        "n_boot": n_boot,
        "seed": seed,
        "measured_abs_mean": float(frame["measured"].abs().mean()),
        # rounding resolution of a measured ΔH: machine epsilon × mean H; want measured_abs_mean ≫ it
        "resolution": float(torch.finfo(dtype).eps * frame["entropy"].abs().mean()),
        **(setup or {}),
    }
    return frame, json_safe(report)


def write_outputs(out_dir: str | Path, frame: pd.DataFrame, report: dict[str, Any]) -> list[Path]:
    """tokens.parquet, summary.json and PNG figures under ``out_dir``; returns the paths written."""
    from steerbench.analysis.omega_plots import write_figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokens = out / "tokens.parquet"
    summary = out / "summary.json"
    atomic_write(tokens, lambda p: frame.to_parquet(p, index=False))

    def dump(p: str) -> None:
        with open(p, "w") as fh:
            json.dump(report, fh, indent=2, sort_keys=True)

    atomic_write(summary, dump)
    return [tokens, summary, *write_figures(out, frame, report)]
