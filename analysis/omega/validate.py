"""Ω validation over several rollout batches: per-token table, statistics per estimator, lr sweep, outputs.

``validate`` runs :func:`steerbench.analysis.omega.measure.measure_entropy_change` on every batch (each from
the same starting policy), stacks the per-token results into one table and summarises each estimator
with :func:`steerbench.analysis.omega.stats.agreement_stats`. ``write_outputs`` writes ``tokens.parquet``,
``summary.json`` and the figures (``steerbench.analysis.omega.plots``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from steerbench.analysis.omega.estimators import ESTIMATORS, SCALE_FREE
from steerbench.analysis.omega.measure import (
    MemoryShape,
    RolloutBatch,
    StepResult,
    check_options,
    fit_row_chunk,
    measure_entropy_change,
    quadrant_labels,
)
from steerbench.analysis.omega.plots import over_training_figure, write_figures
from steerbench.analysis.omega.sources import collect_batches
from steerbench.analysis.omega.stats import agreement_stats, json_safe
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


def estimator_agreement(
    frame: pd.DataFrame, estimators: Sequence[str], n_boot: int, seed: int
) -> dict[str, Any]:
    return {
        name: agreement_stats(
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
    row_chunk: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-token table at ``lr`` and the report ``{"estimators": ..., "setup": ..., "lr_sweep": ...}``.

    ``row_chunk`` sequences go through each forward/backward/JVP (None: a whole batch at once)."""
    check_options(optimizer, lr, estimators, temperature)
    for x in lrs:
        check_options(optimizer, x, estimators, temperature)

    def measure_all(step_lr: float) -> pd.DataFrame:
        frames = []
        for i, batch in enumerate(batches):
            res = measure_entropy_change(
                model,
                batch,
                method,
                optimizer,
                step_lr,
                temperature,
                estimators,
                knobs,
                dtype=dtype,
                row_chunk=row_chunk,
            )
            frames.append(step_frame(res, i, step_lr))
            if progress:
                progress(f"lr={step_lr:g} batch {i + 1}/{len(batches)}")
        return pd.concat(frames, ignore_index=True)

    frame = measure_all(lr)
    report: dict[str, Any] = {"estimators": estimator_agreement(frame, estimators, n_boot, seed)}
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


def memory_budget(device: torch.device, memory_gb: float | None) -> float:
    """Bytes one measurement may add: ``memory_gb`` if given, else half of what is free now (the CPU's
    available RAM, or the GPU's free memory); without /proc (not Linux), a quarter of the physical RAM."""
    if memory_gb:
        return memory_gb * 2**30
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free / 2
    try:
        return _proc_status_bytes("MemAvailable:", "/proc/meminfo") / 2
    except OSError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4


def peak_memory_bytes(device: torch.device) -> int:
    """The peak since :func:`resident_bytes` restarted it: resident set (VmHWM) on the CPU, allocated tensors
    on a GPU. OSError where the system has no /proc (not Linux)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return _proc_status_bytes("VmHWM:")


def plan_row_chunk(
    batches: Sequence[RolloutBatch], shape: MemoryShape, budget: float, row_chunk: int
) -> tuple[int, dict[str, Any]]:
    """``row_chunk`` (0: the most rows whose predicted memory fits ``budget``) and what was planned."""
    rows = max(b.tokens.shape[0] for b in batches)
    length = max(b.tokens.shape[1] for b in batches)
    chunk = row_chunk or fit_row_chunk(rows, length, shape, budget)
    return chunk, {
        "row_chunk": chunk,
        "memory_budget_gb": round(budget / 2**30, 3),
        "predicted_peak_gb": round(shape.predicted_peak(chunk, length) / 2**30, 3),
        "fits_budget": shape.predicted_peak(chunk, length) <= budget,
    }


def validate_subject(
    subject: Any,
    *,
    method: str,
    knobs: dict[str, Any],
    batches: int,
    prompts: int,
    group_size: int,
    temperature: float,
    coin_flips: bool,
    generator: torch.Generator,
    device: torch.device,
    row_chunk: int = 0,
    memory_gb: float | None = None,
    warn: Callable[[str], None] = lambda _m: None,
    on_batch: Callable[[], None] = lambda: None,
    **validate_kwargs: Any,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sample the subject's rollout batches and :func:`validate` them. ``row_chunk`` 0: as many sequences per
    pass as the memory model (``omega.MEMORY_MODEL``) fits in ``memory_gb`` (None: half of what is free)."""

    rollouts, rewards = collect_batches(
        subject.policy,
        subject.source,
        batches=batches,
        prompts=prompts,
        group_size=group_size,
        temperature=temperature,
        method=method,
        knobs=knobs,
        generator=generator,
        coin_flips=coin_flips,
        device=device,
        warn=warn,
        progress=on_batch,
        sample=subject.sample,
    )
    shape = MemoryShape.of(subject.policy, validate_kwargs.get("dtype", torch.float32))
    try:
        resident: int | None = resident_bytes(device)
    except OSError:  # no /proc: the peak is not measured (the prediction still chooses the chunk)
        resident = None
    chunk, memory = plan_row_chunk(rollouts, shape, memory_budget(device, memory_gb), row_chunk)
    if not memory["fits_budget"]:
        warn(
            f"one sequence per pass is predicted to need {memory['predicted_peak_gb']:.1f} GB, over the "
            f"{memory['memory_budget_gb']:.1f} GB budget; running anyway (--memory-gb raises the budget)"
        )
    setup = {
        **subject.source.description,  # task, or data file
        **subject.setup,
        "rewards": rewards,
        "prompts_per_batch": prompts,
        "group_size": group_size,
        "mean_reward": float(torch.cat([b.rewards for b in rollouts if b.rewards is not None]).mean()),
        "device": str(device),
        "sampler": "vllm" if subject.sample is not None else "generate",
        **memory,
    }
    frame, report = validate(
        subject.policy,
        rollouts,
        method=method,
        temperature=temperature,
        knobs=knobs,
        seed=int(validate_kwargs.pop("seed", 0)),
        setup=setup,
        row_chunk=chunk,
        **validate_kwargs,
    )
    # measured like the model's fit: the peak above what was resident before the measurements
    measured = None if resident is None else round((peak_memory_bytes(device) - resident) / 2**30, 3)
    report["setup"]["measured_peak_gb"] = measured
    return frame, report


def resident_bytes(device: torch.device) -> int:
    """What is held now, with the peak counter restarted from it (so sampling's peak does not count)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return int(torch.cuda.memory_allocated(device))
    with open("/proc/self/clear_refs", "w") as fh:  # "5" resets this process's VmHWM to its VmRSS (Linux)
        fh.write("5")
    return _proc_status_bytes("VmRSS:")


def _proc_status_bytes(key: str, path: str = "/proc/self/status") -> int:
    with open(path) as fh:
        return int(next(line for line in fh if line.startswith(key)).split()[1]) * 1024


def write_outputs(out_dir: str | Path, frame: pd.DataFrame, report: dict[str, Any]) -> list[Path]:
    """tokens.parquet, summary.json and PNG figures under ``out_dir``; returns the paths written."""

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


def write_over_training(
    out_dir: str | Path, results: Sequence[tuple[int | None, pd.DataFrame, dict[str, Any]]]
) -> list[Path]:
    """Each checkpoint's outputs under ``step_<N>/``, plus ``over_training.json`` and ``over_training.png``."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for step, frame, report in results:
        written += write_outputs(out / f"step_{step}", frame, report)[:2]
    over = [{"step": step, **report} for step, _, report in results]
    summary = out / "over_training.json"

    def dump(p: str) -> None:
        with open(p, "w") as fh:
            json.dump({"checkpoints": over}, fh, indent=2, sort_keys=True)

    atomic_write(summary, dump)
    return [summary, over_training_figure(over, out / "over_training.png"), *written]
