"""``validate-omega`` end to end: its typed config → the policies → one measured step per batch → reports.

:func:`validate_omega` is the one call the command makes. Types, ranges and choices of the config were
checked when it was composed (``steerbench.config.compose_omega``, schema
``steerbench.schema.OmegaValidationConfig``); here the names are checked where they are defined
(estimators, optimizer, dtype, device, sampler, method, task) and the rules that span several keys, all
before anything is loaded or written. Each policy (``policies``) is then validated
(``validate.validate_subject``) and the outputs are written under ``out``; the caller prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from steerbench.analysis.omega.estimators import ESTIMATORS
from steerbench.analysis.omega.measure import check_options
from steerbench.analysis.omega.policies import (
    HFOptions,
    Subject,
    embedded_subject,
    hf_subject,
    resolve_device,
    resolve_dtype,
    run_subjects,
)
from steerbench.analysis.omega.validate import validate_subject, write_outputs, write_over_training
from steerbench.analysis.omega.vllm_sampling import resolve_sampler
from steerbench.config import compose, method_knobs
from steerbench.errors import UsageError
from steerbench.methods import get_method
from steerbench.runstore import ensure_writable

Update = Callable[[int, int | None], None]  # (done, total) of one progress bar


def _ignore(_message: str) -> None:
    pass


def _no_bar(_description: str, _total: int | None) -> Update:
    return lambda _done, _total: None


@dataclass
class Reporter:
    """Where progress and warnings go: the command draws bars and prints; by default, nowhere."""

    warn: Callable[[str], None] = _ignore
    track: Callable[[str, int | None], Update] = _no_bar  # (description, total) → the bar's update


@dataclass
class Validation:
    """Per policy (one, or a verl run's checkpoints): its training step (None: not a checkpoint), the
    per-token table and the report; and the files written."""

    results: list[tuple[int | None, pd.DataFrame, dict[str, Any]]]
    written: list[Path] = field(default_factory=list)


def validate_omega(omega: Any, out: Path | None = None, reporter: Reporter | None = None) -> Validation:
    """Validate every estimator on the policy ``omega`` (the composed ``omega`` node) names; with ``out``,
    write tokens.parquet, summary.json and figures there (a verl run's checkpoints: one folder each)."""
    reporter = reporter or Reporter()
    if out is not None:
        ensure_writable(out, "--out")
    check_policy_source(omega)
    for lr in [omega.lr, *omega.lrs]:
        check_options(omega.optimizer, lr, estimator_names(omega), omega.temperature)
    dtype, device = resolve_dtype(omega.dtype), resolve_device(omega.device)
    sampler = resolve_sampler(omega.sampler, device, dtype)
    default_cfg = compose([f"task={omega.task}"] if omega.task is not None else [])  # unknown task → exit 2
    if omega.method is not None:
        get_method(omega.method)  # an unknown method → exit 2 before anything is loaded
    data = Path(omega.data) if omega.data is not None else None
    opts = HFOptions(data, omega.max_new_tokens, omega.max_prompt_tokens, sampler)
    results = []
    for subject in load_subjects(omega, default_cfg, opts, dtype, device, reporter):
        cfg = subject.cfg if subject.cfg is not None else default_cfg  # a run's own method, else grpo
        frame, report = validate_one(subject, cfg, omega, dtype, device, reporter)
        warn_if_within_rounding(report, reporter.warn)
        results.append((subject.step, frame, report))
    if out is None:
        return Validation(results)
    if len(results) == 1:
        return Validation(results, write_outputs(out, *results[0][1:]))
    return Validation(results, write_over_training(out, results))


def check_policy_source(omega: Any) -> None:
    """The rules across the keys that choose the policy (the flags' names: the user typed those)."""
    run, model = omega.run is not None, omega.model is not None
    if run and model:
        raise UsageError("--run and --model are exclusive; pass one policy source")
    if omega.data is not None and not (run or model):
        raise UsageError("--data goes with --model PATH (or overrides a verl run's data with --run DIR)")
    if omega.task is not None and (run or model):
        raise UsageError(
            "--task chooses the embedded default policy's task; a --run or --model brings its own"
        )
    if omega.checkpoints == "all" and not run:
        raise UsageError("--checkpoints all goes with --run DIR (a verl run's exports over training)")
    if omega.sampler == "vllm" and not (run or model):
        raise UsageError("--sampler vllm samples Hugging Face models: pass --model PATH or a verl --run DIR")


def load_subjects(
    omega: Any,
    default_cfg: Any,
    opts: HFOptions,
    dtype: torch.dtype,
    device: torch.device,
    reporter: Reporter,
) -> list[Subject]:
    if omega.model is not None:
        return [hf_subject(omega.model, opts, dtype, device)]
    if omega.run is not None:
        return run_subjects(Path(omega.run), opts, dtype, device, omega.checkpoints)
    warm_start = reporter.track("warm start (cached after the first time)", None)
    return [embedded_subject(default_cfg, device, warm_start)]


def method_of(cfg: Any, method: str | None) -> tuple[str, dict[str, Any]]:
    """The method name and knobs: ``method`` with its defaults if given, else the config's."""
    if method is not None:
        return method, {}
    return str(cfg.method.name), method_knobs(cfg)


def validate_one(
    subject: Subject, cfg: Any, omega: Any, dtype: torch.dtype, device: torch.device, reporter: Reporter
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One policy: its rollout batches, then one measured step per batch (per lr of the sweep)."""
    method, knobs = method_of(cfg, omega.method)
    label = "" if subject.step is None else f"step {subject.step}: "
    extra_lrs = [x for x in omega.lrs if x != omega.lr]  # the sweep reuses the main lr's measurement
    sampled = _counter(reporter.track(f"{label}sampling rollouts", omega.batches), omega.batches)
    steps = omega.batches * (1 + len(extra_lrs))
    description = f"{label}one {omega.optimizer} step per batch, {len(estimator_names(omega))} estimators"
    measured = _counter(reporter.track(description, steps), steps)
    return validate_subject(
        subject,
        method=method,
        knobs=knobs,
        batches=omega.batches,
        prompts=omega.prompts,
        group_size=omega.group_size,
        temperature=omega.temperature,
        coin_flips=omega.rewards == "random",
        generator=torch.Generator().manual_seed(omega.seed),
        device=device,
        row_chunk=omega.row_chunk,
        memory_gb=omega.memory_gb,
        warn=reporter.warn,
        on_batch=sampled,
        optimizer=omega.optimizer,
        lr=omega.lr,
        lrs=list(omega.lrs),
        estimators=estimator_names(omega),
        dtype=dtype,
        n_boot=omega.n_boot,
        seed=omega.seed,
        progress=lambda _message: measured(),
    )


def estimator_names(omega: Any) -> list[str]:
    return list(omega.estimators) if omega.estimators is not None else list(ESTIMATORS)


def _counter(update: Update, total: int) -> Callable[[], None]:
    """A callback that advances ``update``'s bar by one each call."""
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        update(done, total)

    return advance


def warn_if_within_rounding(report: dict[str, Any], warn: Callable[[str], None]) -> None:
    s = report["setup"]
    if s["measured_abs_mean"] < 100 * s["resolution"]:
        warn(
            f"mean |ΔH| = {s['measured_abs_mean']:.2e} is within 100× of the {s['dtype']} "
            f"rounding resolution ({s['resolution']:.2e}); rounding noise degrades every statistic. "
            "Raise --lr or pass --dtype float64."
        )
