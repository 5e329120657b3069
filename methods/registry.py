"""The method registry: name → loss, advantage shaper, typed knobs, source."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from steerbench.methods.batch import MethodError, PolicyBatch
from steerbench.methods.surrogate import CLIP_KNOBS, SurrogateConfig

LossFn = Callable[[PolicyBatch, Any], tuple[torch.Tensor, dict[str, float]]]
# rewards (B,), group_index (B,), mean token log π_old of each sequence (B,), config → advantage (B,)
ShaperFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Any], torch.Tensor]
# config, progress (step, total_steps, epoch, total_epochs, entropy) → config for the next step
ScheduleFn = Callable[[Any, dict[str, float]], Any]

KINDS = ("baseline", "clipping", "loss term", "shaper", "surrogate", "token weights")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # one of KINDS
    config: type[SurrogateConfig]  # typed knobs with defaults: the single source of truth
    loss: LossFn
    shaper: ShaperFn
    source: str  # paper / code the formula follows
    summary: str  # one line: the formula
    needs: tuple[str, ...] = ()  # extra inputs: "entropy", "entropy_grad", "ref_log_prob", "seq_log_prob"
    schedule: ScheduleFn | None = None  # per-step knob update (pos_adv_reweight's λ schedules)
    # clipping knobs that ARE the method's mechanism: they keep the config default in every scenario
    own_clipping: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.own_clipping) - set(CLIP_KNOBS)
        if unknown:
            raise ValueError(f"own_clipping of {self.name!r} names non-clipping knobs {sorted(unknown)}")

    def knobs(self) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(self.config)}

    def make_config(self, **knobs: Any) -> Any:
        allowed = self.knobs()
        unknown = sorted(set(knobs) - set(allowed))
        if unknown:
            raise MethodError(
                f"unknown knob(s) {', '.join(unknown)} for method {self.name!r}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        return self.config(**knobs)


REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    if spec.kind not in KINDS:
        raise ValueError(f"kind {spec.kind!r} of {spec.name!r} is not one of {KINDS}")
    if spec.name in REGISTRY:
        raise ValueError(f"method {spec.name!r} is registered twice; give one of them another name")
    REGISTRY[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise MethodError(f"unknown method {name!r}; available: {', '.join(sorted(REGISTRY))}") from None
