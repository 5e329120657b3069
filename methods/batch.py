"""The tensors every policy loss receives, validated once at the boundary."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields

import torch

from steerbench.errors import UsageError

# the unit a per-group statistic is taken over (STEER's max|Ω|, Clip-Cov's covariance)
UNITS = ("microbatch", "batch")


class MethodError(UsageError):
    """Bad input to a method: unknown name or knob, out-of-range value, malformed tensors."""


def validate_choice(knob: str, value: str, choices: Collection[str]) -> None:
    """A MethodError naming the knob, its value and the allowed ones, unless ``value`` is in ``choices``."""
    if value not in choices:
        raise MethodError(f"{knob}={value!r} is unknown; choose one of {', '.join(choices)}")


def validate_unit(unit_knob: str, unit: str, size_knob: str, size: int) -> None:
    validate_choice(unit_knob, unit, UNITS)
    if size < 1:
        raise MethodError(f"{size_knob}={size} is out of range; it must be ≥ 1")


def unit_slices(rows: int, unit: str, size: int) -> list[slice]:
    """Row slices of one statistic each: consecutive micro-batches of ``size`` sequences, or one slice."""
    step = unit_rows(rows, unit, size)
    return [slice(start, start + step) for start in range(0, rows, step)]


def unit_rows(rows: int, unit: str, size: int) -> int:
    """Sequences per unit of one statistic: a micro-batch of ``size`` sequences, or the whole batch."""
    return size if unit == "microbatch" else rows


def blocks(values: torch.Tensor, rows_per_block: int, fill: float | bool) -> torch.Tensor:
    """``(rows, ...)`` → ``(blocks, rows_per_block · ...)``: consecutive blocks of rows side by side, the last
    padded with ``fill``, so a per-unit statistic is one reduction over dim 1 for every unit at once (no
    loop, no host sync: on a GPU a loop over units cost one synchronisation per micro-batch)."""
    rows = values.shape[0]
    groups = -(-rows // rows_per_block)
    if rows % rows_per_block:
        pad = values.new_full((groups * rows_per_block - rows, *values.shape[1:]), fill)
        values = torch.cat([values, pad])
    return values.reshape(groups, -1)


@dataclass
class PolicyBatch:
    """Per-token tensors of one (micro-)batch, all shaped ``(batch, response_len)`` unless noted.

    log_prob       log π_θ(o_t | s_t) of the current policy, carries gradient
    old_log_prob   log π_old(o_t | s_t) of the policy that sampled the batch
    advantages     A_t (already shaped by the method's advantage shaper)
    response_mask  1 on valid response tokens, 0 on padding
    entropy        H(π_θ(·|s_t)), full vocabulary, nats, at the sampling temperature; carries gradient
                   only where a method needs it (entropy_bonus)
    ref_log_prob   log π_ref(o_t | s_t), for the KL penalty
    group_index    ``(batch,)`` integer id of the prompt group a sequence belongs to
    rewards        ``(batch,)`` scalar reward of each sequence
    old_entropy    H(π_old(·|s_t)) at sampling time: full vocabulary, nats, sampling temperature, no
                   gradient; fixed for every mini-batch of a step (STEER's release uses it)
    """

    log_prob: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    response_mask: torch.Tensor
    entropy: torch.Tensor | None = None
    ref_log_prob: torch.Tensor | None = None
    group_index: torch.Tensor | None = None
    rewards: torch.Tensor | None = None
    old_entropy: torch.Tensor | None = None

    def __post_init__(self) -> None:
        shape = self.log_prob.shape
        if self.log_prob.dim() != 2:
            raise MethodError(f"log_prob must be 2-D (batch, response_len), got shape {tuple(shape)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise MethodError(f"{f.name} must be a torch.Tensor, got {type(value).__name__}")
            expected = shape[:1] if f.name in ("group_index", "rewards") else shape
            if tuple(value.shape) != tuple(expected):
                raise MethodError(
                    f"{f.name} has shape {tuple(value.shape)}, expected {tuple(expected)} to match log_prob"
                )
            if f.name in ("group_index", "response_mask"):
                continue
            if not value.is_floating_point():
                raise MethodError(f"{f.name} must be a floating-point tensor, got dtype {value.dtype}")
            if value.dtype != self.log_prob.dtype:
                raise MethodError(
                    f"{f.name} has dtype {value.dtype}, expected {self.log_prob.dtype} like log_prob"
                )
            if not torch.isfinite(value.detach()).all():
                raise MethodError(f"{f.name} contains NaN or Inf; check the rollout and the model's logits")
        if self.group_index is not None and self.group_index.is_floating_point():
            raise MethodError(f"group_index must be an integer tensor, got dtype {self.group_index.dtype}")
        if self.response_mask.sum() == 0:
            raise MethodError("response_mask is all zero: the batch has no valid response tokens")

    @property
    def mask(self) -> torch.Tensor:
        return self.response_mask.to(self.log_prob.dtype)
