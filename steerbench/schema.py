"""The typed run config: every knob a user can set outside ``method``, with its type and allowed range.

``RunSchema`` is registered with Hydra as the schema of ``experiments/config.yaml`` (its first default),
so Hydra checks types while composing (``trainer.steps=abc`` is refused); ``check_ranges`` then checks
every field's range and finiteness in one pass, before anything is written. The YAML files stay the
presets; these dataclasses say what is allowed. Method knobs are typed by the methods' own dataclasses
(the generated ``method`` group) and task knobs by the task dataclasses (``steerbench.tasks.core``).
``ValidateOmegaSchema`` is the root of ``validate-omega``'s config, its own ``omega`` group, checked the
same way (``steerbench.config.compose_omega``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from steerbench.errors import UsageError

SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed's limit


@dataclass(frozen=True)
class Range:
    """lo ≤ x ≤ hi (or lo < x with ``lo_open``); None: unbounded. Floats must be finite."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def holds(self, x: float) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or x <= self.hi

    def __str__(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '≥'} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"≤ {_fmt(self.hi)}")
        return " and ".join(parts) or "a finite number"


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def knob(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Any:
    """A dataclass field with a default and an allowed range (checked by ``check_ranges``)."""
    return field(default=default, metadata={"range": Range(lo, hi, lo_open)})


def positive(default: float | None) -> Any:
    """A knob that must be > 0."""
    return knob(default, 0, lo_open=True)


def choice(default: str, *options: str) -> Any:
    """A text knob that must be one of ``options``."""
    return field(default=default, metadata={"choices": options})


def items(
    default: Sequence[Any] | None, *, lo: float | None = None, lo_open: bool = False, nonempty: bool = False
) -> Any:
    """A list knob (or None): every item within the range, and at least one item if ``nonempty``."""
    metadata = {"range": Range(lo, None, lo_open), "nonempty": nonempty}
    if default is None:
        return field(default=None, metadata=metadata)
    return field(default_factory=lambda: list(default), metadata=metadata)


@dataclass
class TrainerConfig:
    """The embedded GRPO trainer (and the batch shape every backend uses)."""

    steps: int = knob(100, 1)  # RL steps (one rollout batch each)
    seed: int = knob(0, 0, SEED_MAX)
    prompts_per_step: int = knob(32, 1)  # distinct prompts per rollout batch
    samples_per_prompt: int = knob(8, 1)  # n: GRPO group size
    temperature: float = positive(1.0)  # sampling temperature; entropies are measured at it
    ppo_epochs: int = knob(1, 1)  # passes over each rollout batch
    minibatches: int = knob(4, 1)  # optimiser steps per pass; must divide the batch
    lr: float = positive(3.0e-4)
    weight_decay: float = knob(0.0, 0)
    grad_clip: float = positive(1.0)
    eval_every: int = knob(10, 1)  # steps between validation passes (and at the last step)
    eval_prompts: int = knob(64, 1)  # held-out prompts for val/pass@1 and val/pass@k
    pass_k: int = knob(8, 1)  # k of val/pass@k (k samples per validation prompt)
    checkpoint_every: int = knob(10, 1)  # steps between atomic checkpoints (and at the last step)
    threads: int = knob(0, 0, 4096)  # torch threads; 0 = torch's default
    share_prompts: bool = True  # embedded: score each group's prompt once; false: each row alone (reference)
    fused_adamw: bool = True  # embedded: torch's fused AdamW kernel; false: its for-each one (reference)
    omega_every: int = knob(0, 0)  # Ω-validation statistics every K steps; 0 = off
    omega_lr: float = positive(1.0e-3)  # SGD step size of that measurement
    wandb: bool = False  # also log to Weights & Biases
    device: str = "cpu"  # embedded: where the policy trains: cpu | cuda | cuda:N


# Knobs added after runs were stored, each with the value that reproduces those runs: a stored config
# without the key reads as having it (`runstore.RunStore.prepare`), so `run` and `grid` still find a
# finished run, or resume a partial one, written before the knob existed. That value need not be the
# default: runs stored before share_prompts and fused_adamw ran the reference path (both false), so the
# default config (the fast path) refuses their folders, naming both knobs; pass both false to reach them.
ADDED_KNOBS: dict[tuple[str, str], Any] = {
    ("trainer", "share_prompts"): False,
    ("trainer", "fused_adamw"): False,
    ("trainer", "device"): "cpu",
}


@dataclass
class WarmStartConfig:
    """The supervised warm start, cached by the hash of this block + model + task."""

    steps: int = knob(300, 0)
    lr: float = positive(3.0e-3)
    batch_size: int = knob(128, 1)
    seed: int = knob(0, 0, SEED_MAX)
    cache_dir: str | None = None  # null: $STEERBENCH_CACHE, else ~/.cache/steerbench


@dataclass
class ModelSchema:
    """The embedded policy's shape (``steerbench.local.model.ModelConfig`` checks the head size)."""

    n_layer: int = knob(2, 1, 256)
    n_head: int = knob(4, 1, 1024)
    d_model: int = knob(128, 1, 65536)
    max_seq_len: int = knob(64, 1, 1_000_000)
    hf_path: str | None = None  # a local Hugging Face causal-LM directory instead of the tiny model


@dataclass
class RunSchema:
    """The root config. method, scenario and task are typed by their groups; verl is the backend's own."""

    backend: str = "local"
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    model: ModelSchema = field(default_factory=ModelSchema)
    method: Any = None
    scenario: Any = None
    task: Any = None
    verl: Any = None


TYPED = {"trainer": TrainerConfig, "warm_start": WarmStartConfig, "model": ModelSchema}


@dataclass
class OmegaValidationConfig:
    """``steerbench validate-omega``: the policy measured, and the one real step per rollout batch.

    Names (optimizer, estimators, dtype, device, sampler, method, task) are checked where they are
    defined (``steerbench.analysis.omega``, the registry, the task group); rules across keys too."""

    # the policy: at most one of run and model; neither: the embedded default policy
    run: str | None = None  # run directory: embedded (latest.pt + config.yaml) or verl (HF exports)
    model: str | None = None  # local Hugging Face causal-LM directory, with its tokenizer
    data: str | None = None  # verl-format parquet of prompts + answers (model; or a verl run's data)
    task: str | None = None  # the embedded default policy's task (null: the run config's)
    checkpoints: str = choice("latest", "latest", "all")  # verl runs: the last export, or each one
    method: str | None = None  # whose loss takes the step, at its defaults (null: the run's, else grpo)
    # the measured step
    optimizer: str = "sgd"  # sgd (the theorem's assumption) or adam (practice)
    lr: float = positive(1e-3)  # learning rate of the one measured step
    lrs: list[float] = items((), lo=0, lo_open=True)  # lr sweep of the first-order error; empty: none
    estimators: list[str] | None = items(None, nonempty=True)  # names (null: every estimator)
    batches: int = knob(4, 1)  # rollout batches (batch-level statistics need ≥ 3)
    prompts: int = knob(8, 1)  # distinct prompts per batch
    group_size: int = knob(8, 1)  # samples per prompt (GRPO group)
    temperature: float = positive(1.0)  # sampling temperature; entropies are measured at it
    rewards: str = choice("task", "task", "random")  # task: the verifier; random: coin flips
    seed: int = knob(0, 0, SEED_MAX)  # of prompts, samples, rewards and the bootstrap
    n_boot: int = knob(200, 0)  # bootstrap resamples for the 95% CIs
    # sizes and hardware
    max_new_tokens: int | None = knob(None, 1)  # response cap (null: the task's; 512 with data; else 16)
    max_prompt_tokens: int = knob(1024, 1)  # data prompts longer than this (chat-templated) are skipped
    row_chunk: int = knob(0, 0)  # sequences per forward/backward/JVP pass; 0: the most the budget fits
    memory_gb: float | None = positive(None)  # one measurement's budget (null: half the free memory)
    dtype: str = "float32"  # float32, bfloat16 (memory; float32 statistics) or float64 (exact)
    device: str = "auto"  # auto (a GPU when there is one), cpu or cuda
    sampler: str = "auto"  # a Hugging Face model's rollouts: generate, vllm (GPU) or auto


@dataclass
class ValidateOmegaSchema:
    """The root of ``validate-omega``'s config."""

    omega: OmegaValidationConfig = field(default_factory=OmegaValidationConfig)


def check_keys(prefix: str, node: Any, schema: type) -> None:
    """UsageError for a key the schema does not have (``+trainer.x=1`` gets past Hydra's struct mode)."""
    fields = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(str(k) for k in node.keys() if k not in fields)
    if unknown:
        raise UsageError(
            f"unknown key {', '.join(prefix + k for k in unknown)}; valid keys: {', '.join(sorted(fields))}"
        )


def check_ranges(prefix: str, node: Any, schema: type) -> None:
    """UsageError for the first field of ``node`` outside its range or choices (key, value and what is
    allowed); a list field's items are checked one by one."""
    for f in dataclasses.fields(schema):
        value = node[f.name]
        if value is None:
            continue
        values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        if f.metadata.get("nonempty") and not values:
            raise UsageError(f"{prefix}.{f.name} is empty; give at least one")
        rng, choices = f.metadata.get("range"), f.metadata.get("choices")
        if rng is not None and not all(rng.holds(x) for x in values):
            raise UsageError(f"{prefix}.{f.name}={value} is out of range; it must be {rng}")
        if choices is not None and value not in choices:
            raise UsageError(f"{prefix}.{f.name}={value!r} is unknown; choose {' or '.join(choices)}")


def check_finite(prefix: str, knobs: dict[str, Any]) -> None:
    """UsageError for a NaN or infinite float among ``knobs`` (a method's or a task's)."""
    for key, value in knobs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{prefix}.{key}={value} is not a finite number")
