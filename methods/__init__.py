"""Entropy interventions for RLVR as pure, registered functions of per-token tensors.

Public API:
    PolicyBatch                  the tensors a loss receives, shape (batch, response_len)
    compute_policy_loss(name, batch, **knobs) -> (loss, metrics)
    compute_advantages(name, rewards, group_index, response_mask, old_log_prob=None, **knobs) -> (B, T)
    REGISTRY / get_method(name)  name → MethodSpec (kind, typed knobs with defaults, source), in
                                 registry order: what `steerbench methods` and `compare` list
    catalog()                    the registry as plain rows (what ``steerbench methods --json`` prints)

Adding a method is one file. Inside this package: ``methods/<name>.py`` calling ``register(MethodSpec(...))``
at import (every module here is imported). From another package: the same file, named in that package's
``pyproject.toml`` under the entry-point group ``steerbench.methods``::

    [project.entry-points."steerbench.methods"]
    my_method = "my_package.my_method"

Registry order: ``PAPER_ORDER``, then this package's other methods by module name, then plugins by
entry-point name.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

import torch

from steerbench.methods.aggregation import AGG_MODES, aggregate
from steerbench.methods.batch import MethodError, PolicyBatch
from steerbench.methods.registry import REGISTRY, MethodSpec, get_method
from steerbench.methods.surrogate import CLIP_KNOBS, SurrogateConfig

# The published comparison's order (grpo first: every other method is measured against it).
PAPER_ORDER = (
    "grpo",
    "clip_higher",
    "kl",
    "entropy_bonus",
    "w_reinforce",
    "unlikeliness",
    "pos_adv_reweight",
    "clip_cov",
    "kl_cov",
    "steer",
)
PLUGIN_GROUP = "steerbench.methods"  # entry-point group naming other packages' method modules


def _register_all() -> None:
    """Import every module that registers a method: ``PAPER_ORDER`` first, so the registry lists them
    in that order, then the rest of this package, then the plugins. Runs last in this module, so a
    method module may import anything this package exports."""
    others = sorted(info.name for info in pkgutil.iter_modules(__path__) if info.name not in PAPER_ORDER)
    for module in (*PAPER_ORDER, *others):
        importlib.import_module(f"{__name__}.{module}")
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        plugin.load()


__all__ = [
    "AGG_MODES",
    "REGISTRY",
    "MethodError",
    "MethodSpec",
    "PolicyBatch",
    "SurrogateConfig",
    "aggregate",
    "catalog",
    "compute_advantages",
    "compute_policy_loss",
    "get_method",
    "sequence_mean_log_prob",
]


def compute_policy_loss(name: str, batch: PolicyBatch, **knobs: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's scalar loss and its metrics (stable names such as ``clip/frac_high``)."""
    spec = get_method(name)
    cfg = spec.make_config(**knobs)
    # steer with entropy=rollout reads PolicyBatch.old_entropy instead (verl: no current entropy computed)
    reads_rollout_entropy = getattr(cfg, "entropy", None) == "rollout" and batch.old_entropy is not None
    if "entropy" in spec.needs or "entropy_grad" in spec.needs:
        if batch.entropy is None and not reads_rollout_entropy:
            raise MethodError(
                f"method {name!r} needs PolicyBatch.entropy (the current policy's token entropy)"
            )
    if "entropy_grad" in spec.needs and batch.log_prob.requires_grad and not batch.entropy.requires_grad:
        raise MethodError(
            f"method {name!r} needs an entropy that carries gradient; compute it from the logits "
            "in the same forward pass and do not detach it"
        )
    if "ref_log_prob" in spec.needs and batch.ref_log_prob is None:
        raise MethodError(
            f"method {name!r} needs PolicyBatch.ref_log_prob (the reference policy's log-probs)"
        )
    return spec.loss(batch, cfg)


def sequence_mean_log_prob(log_prob: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Mean token log-probability of each sequence, (B, T) → (B,)."""
    mask = response_mask.to(log_prob.dtype)
    return (log_prob * mask).sum(-1) / mask.sum(-1).clamp_min(1)


def compute_advantages(
    name: str,
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    response_mask: torch.Tensor,
    old_log_prob: torch.Tensor | None = None,
    **knobs: Any,
) -> torch.Tensor:
    """Per-token advantages ``(B, T)`` from sequence rewards ``(B,)`` with the method's shaper."""
    spec = get_method(name)
    cfg = spec.make_config(**knobs)
    if rewards.dim() != 1 or group_index.shape != rewards.shape:
        raise MethodError(
            f"rewards and group_index must both be shaped (batch,), got {tuple(rewards.shape)} "
            f"and {tuple(group_index.shape)}"
        )
    if response_mask.shape[0] != rewards.shape[0]:
        raise MethodError(
            f"response_mask has {response_mask.shape[0]} rows but rewards has {rewards.shape[0]}"
        )
    if not torch.isfinite(rewards).all():
        raise MethodError("rewards contain NaN or Inf; check the verifier")
    seq_log_prob = None
    if "seq_log_prob" in spec.needs:
        if old_log_prob is None:
            raise MethodError(f"method {name!r} ranks samples by likelihood and needs old_log_prob")
        seq_log_prob = sequence_mean_log_prob(old_log_prob, response_mask)
    per_sequence = spec.shaper(rewards.to(torch.float32), group_index, seq_log_prob, cfg)
    return per_sequence[:, None] * response_mask.to(per_sequence.dtype)


def catalog() -> list[dict[str, Any]]:
    """One row per method in registry order: name, kind, knobs with their defaults (clipping apart: the
    scenario's, but for the clipping a method owns), needs, formula and source."""
    return [
        {
            "name": spec.name,
            "kind": spec.kind,
            "knobs": {k: v for k, v in spec.knobs().items() if k not in CLIP_KNOBS},
            "own_clipping": {k: spec.knobs()[k] for k in spec.own_clipping},
            "needs": list(spec.needs),
            "summary": spec.summary,
            "source": spec.source,
        }
        for spec in REGISTRY.values()
    ]


_register_all()
