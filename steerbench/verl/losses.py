"""Adapters from verl 0.9.1's policy-loss and advantage-estimator registries to ``steerbench.methods``.

Names. Every method registers as ``steerbench_<method>`` (policy loss) and, for shapers,
``steerbench_<method>`` (advantage estimator). verl already ships ``clip_cov`` and ``kl_cov`` with
different defaults, so one uniform prefix avoids any doubt about whose formula ran.

Knobs. verl's own actor fields carry the shared knobs (``clip_ratio_low`` → ``clip_low``,
``clip_ratio_high`` → ``clip_high``, ``clip_ratio_c`` → ``clip_c``, ``loss_agg_mode``;
``algorithm.norm_adv_by_std_in_grpo`` → ``norm_adv_by_std``). Every other knob is a field of
:class:`steerbench.verl_plugin.SteerbenchPolicyLossConfig` (selected with
``actor_rollout_ref.actor.policy_loss._target_``), default ``None`` = "the method's default". Shaper knobs
also live under ``+algorithm.steerbench.<knob>``, because an advantage estimator only sees ``config.algorithm``.

verl itself is imported only inside :func:`register_all` and :func:`missing_registrations` (and by
``steerbench.verl_plugin``, which builds that config class), so the launcher, the grid and the local
backend import this module without the verl extra.

Aggregation. ``steerbench.methods`` aggregates one micro-batch on one rank. verl's ``agg_loss``
normalises by the *global* mini-batch instead (``config.global_batch_info``, filled by ``ppo_loss``):

    token-mean               Σℓm / batch_num_tokens · dp_size      = local · (Σm · dp_size / batch_num_tokens)
    token-sum                Σℓm · dp_size                          = local · dp_size
    seq-mean-token-{sum,mean} Σ_seq / global_batch_size · dp_size    = local · (n_seq · dp_size / global_batch_size)
    seq-mean-token-sum-norm  as above / loss_scale_factor           = local · (… ) · (T / loss_scale_factor)

Every steerbench loss is a sum of terms aggregated with the same mode, so multiplying the local loss by
that factor gives exactly verl's normalisation (tested against ``vanilla``), and gradient accumulation
over micro-batches and DP ranks sums to the mini-batch mean like any built-in loss.

Entropy, reference log-probs. verl never passes them to a registered loss. The shim in
:mod:`steerbench.verl.shim` puts them in :data:`EXTRA_INPUTS` for the duration of one ``ppo_loss`` call:
the current policy's entropy (``entropy``, only when a method reads it: ``actor.calculate_entropy`` is
off otherwise, so the update's forward builds no full-vocabulary entropy at all), π_old's entropy from the
batch (``old_entropy``: verl's ``entropy`` field, what STEER's ``entropy=rollout`` reads) and
``ref_log_prob``. See :func:`entropy_sources`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from steerbench.methods import REGISTRY, MethodError, PolicyBatch, compute_advantages, compute_policy_loss
from steerbench.methods.grpo import grpo_shaper

PREFIX = "steerbench_"

# steerbench knob → verl ActorConfig field (read from ``config`` by the loss)
ACTOR_NATIVE = {
    "clip_low": "clip_ratio_low",
    "clip_high": "clip_ratio_high",
    "clip_c": "clip_ratio_c",
    "loss_agg_mode": "loss_agg_mode",
}
# steerbench knob → verl algorithm field (read from ``config`` by the estimator)
ALGORITHM_NATIVE = {"norm_adv_by_std": "norm_adv_by_std_in_grpo"}
NATIVE_KNOBS = frozenset(ACTOR_NATIVE) | frozenset(ALGORITHM_NATIVE)

# Filled by steerbench.verl.shim for one ppo_loss call: "entropy", "old_entropy", "ref_log_prob" (B, T)
EXTRA_INPUTS: contextvars.ContextVar[dict[str, torch.Tensor] | None] = contextvars.ContextVar(
    "steerbench_verl_extra_inputs", default=None
)
# Filled by the advantage shim for one compute_advantage call: "old_log_probs" (B, T)
ADVANTAGE_INPUTS: contextvars.ContextVar[dict[str, torch.Tensor] | None] = contextvars.ContextVar(
    "steerbench_verl_advantage_inputs", default=None
)


def loss_name(method: str) -> str:
    return PREFIX + method


def estimator_name(method: str) -> str:
    """The adv estimator a method needs: verl's built-in ``grpo`` when its shaper is GRPO's, else ours."""
    spec = REGISTRY[method]
    return "grpo" if spec.shaper is grpo_shaper else PREFIX + method


def extra_knob_fields() -> dict[str, Any]:
    """Every non-native knob of every method → its default in the first method that declares it."""
    fields: dict[str, Any] = {}
    for spec in REGISTRY.values():
        for knob, default in spec.knobs().items():
            if knob not in NATIVE_KNOBS:
                fields.setdefault(knob, default)
    return fields


# the class verl_plugin builds on verl's PolicyLossConfig, with one field per knob of extra_knob_fields()
POLICY_LOSS_CONFIG_TARGET = "steerbench.verl_plugin.SteerbenchPolicyLossConfig"


def _cfg_get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    getter = getattr(config, "get", None)
    if getter is not None:
        try:
            return getter(key, default)
        except Exception:  # noqa: BLE001 - DictConfig in struct mode
            pass
    return getattr(config, key, default)


def knobs_from_actor_config(method: str, config: Any, loss_agg_mode: str) -> dict[str, Any]:
    """The method's knobs as verl's ActorConfig holds them (native fields + SteerbenchPolicyLossConfig)."""
    allowed = REGISTRY[method].knobs()
    clip_ratio = _cfg_get(config, "clip_ratio", 0.2)
    knobs: dict[str, Any] = {"loss_agg_mode": loss_agg_mode}
    low = _cfg_get(config, "clip_ratio_low")
    high = _cfg_get(config, "clip_ratio_high")
    knobs["clip_low"] = clip_ratio if low is None else low
    knobs["clip_high"] = clip_ratio if high is None else high
    knobs["clip_c"] = _cfg_get(config, "clip_ratio_c", 3.0)
    policy_loss = _cfg_get(config, "policy_loss")
    for knob in allowed:
        if knob in NATIVE_KNOBS:
            continue
        value = _cfg_get(policy_loss, knob)
        if value is not None:
            knobs[knob] = value
    return {k: v for k, v in knobs.items() if k in allowed}


def dp_scale(loss_mat_shape: tuple[int, ...], mask: torch.Tensor, mode: str, info: dict[str, Any]) -> float:
    """Factor turning a one-rank steerbench aggregate into verl's global-batch ``agg_loss`` value."""

    def _num(x: Any) -> float | None:
        if x is None:
            return None
        return float(x.item()) if isinstance(x, torch.Tensor) else float(x)

    dp_size = _num(info.get("dp_size")) or 1.0
    batch_num_tokens = _num(info.get("batch_num_tokens"))
    global_batch_size = _num(info.get("global_batch_size"))
    loss_scale_factor = _num(info.get("loss_scale_factor"))
    mask = mask.to(torch.float32)
    if mode == "token-mean":
        if batch_num_tokens is None:
            if dp_size > 1:
                raise MethodError("(global) batch_num_tokens is required when dp_size > 1")
            return 1.0
        return float(mask.sum()) * dp_size / batch_num_tokens
    if mode == "token-sum":
        return dp_size
    n_seq = float((mask.sum(-1) > 0).sum())
    factor = 1.0
    if global_batch_size is not None:
        factor = n_seq * dp_size / global_batch_size
    elif dp_size > 1:
        raise MethodError("global_batch_size is required when dp_size > 1")
    if mode == "seq-mean-token-sum-norm" and loss_scale_factor is not None:
        factor *= loss_mat_shape[-1] / loss_scale_factor
    return factor


def _verl_metric_aliases(metrics: dict[str, float]) -> dict[str, float]:
    """verl's own clip keys next to ours, so verl's console and dashboards read the same numbers."""
    out = dict(metrics)
    if "clip/frac_high" in metrics and "clip/frac_low" in metrics:
        out["actor/pg_clipfrac"] = metrics["clip/frac_high"] + metrics["clip/frac_low"]
    if "clip/frac_dual" in metrics:
        out["actor/pg_clipfrac_lower"] = metrics["clip/frac_dual"]
    if "kl/approx_old" in metrics:
        out["actor/ppo_kl"] = metrics["kl/approx_old"]
    return out


def make_policy_loss(method: str):
    """verl ``PolicyLossFn`` (keyword call, ``(loss, metrics)``) running ``steerbench.methods`` ``method``."""
    spec = REGISTRY[method]

    def policy_loss(
        old_log_prob: torch.Tensor,
        log_prob: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        loss_agg_mode: str = "token-mean",
        config: Any = None,
        rollout_is_weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if rollout_is_weights is not None:
            raise MethodError(
                f"steerbench loss {loss_name(method)!r} does not apply rollout-correction IS weights; "
                "set algorithm.rollout_correction.rollout_is=null or use a verl built-in loss"
            )
        extra = EXTRA_INPUTS.get() or {}
        needs = set(spec.needs)
        knobs = knobs_from_actor_config(method, config, loss_agg_mode)
        sources = entropy_sources(method, knobs)
        entropy = extra.get("entropy") if sources & {"current", "current_grad"} else None
        if sources & {"current", "current_grad"} and entropy is None:
            raise MethodError(
                f"method {method!r} needs the current policy's token entropy, which verl's registry does not pass; "
                "launch with `python -m steerbench.verl.main_ppo` (steerbench's entropy shim) and "
                "actor_rollout_ref.actor.calculate_entropy=true"
            )
        if entropy is not None and "current_grad" not in sources:
            entropy = entropy.detach()
        old_entropy = extra.get("old_entropy") if "rollout" in sources else None
        if "rollout" in sources and old_entropy is None:
            raise MethodError(
                f"method {method!r} uses π_old's entropy, the batch's 'entropy' (stored by verl's "
                "_compute_old_log_prob), which this batch lacks (algorithm.rollout_correction.bypass_mode skips "
                "that pass) or which reached the loss without steerbench's shim (python -m steerbench.verl.main_ppo); "
                "set method.entropy=current to use the current policy's"
            )
        ref_log_prob = extra.get("ref_log_prob")
        if "ref_log_prob" in needs and ref_log_prob is None:
            raise MethodError(
                f"method {method!r} needs reference log-probs; launch with `python -m steerbench.verl.main_ppo` "
                "and actor_rollout_ref.actor.use_kl_loss=true, kl_loss_coef=0 (the shim passes ref_log_prob)"
            )
        dtype = log_prob.dtype
        batch = PolicyBatch(
            log_prob=log_prob,
            old_log_prob=old_log_prob.to(dtype),
            advantages=advantages.to(dtype),
            response_mask=response_mask,
            entropy=None if entropy is None else entropy.to(dtype),
            ref_log_prob=None
            if ref_log_prob is None or "ref_log_prob" not in needs
            else ref_log_prob.to(dtype),
            old_entropy=None if old_entropy is None else old_entropy.detach().to(dtype),
        )
        loss, metrics = compute_policy_loss(method, batch, **knobs)
        info = dict(_cfg_get(config, "global_batch_info", None) or {})
        scale = dp_scale(
            tuple(log_prob.shape), response_mask, knobs.get("loss_agg_mode", loss_agg_mode), info
        )
        if scale != 1.0:
            loss = loss * scale
        return loss, _verl_metric_aliases(metrics)

    policy_loss.__name__ = f"steerbench_{method}_policy_loss"
    policy_loss.__qualname__ = policy_loss.__name__
    policy_loss.__doc__ = f"verl policy loss for steerbench method {method!r}: {spec.summary}"
    return policy_loss


def group_ids(index: Any, n: int) -> torch.Tensor:
    """verl's ``uid`` array (strings) → integer group ids ``(B,)``."""
    if index is None:
        return torch.arange(n)
    _, inverse = np.unique(np.asarray(index, dtype=object).astype(str), return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long)


def make_adv_estimator(method: str):
    """verl advantage estimator ``(token_level_rewards, response_mask, index, config) → (adv, returns)``."""
    spec = REGISTRY[method]

    def estimator(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Any = None,
        config: Any = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        allowed = spec.knobs()
        knobs: dict[str, Any] = {}
        section = _cfg_get(config, "steerbench", None) or {}
        for knob in allowed:
            if knob in ALGORITHM_NATIVE:
                value = _cfg_get(config, ALGORITHM_NATIVE[knob])
            elif knob in ACTOR_NATIVE:
                continue
            else:
                value = _cfg_get(section, knob)
            if value is not None:
                knobs[knob] = value
        old_log_prob = None
        if "seq_log_prob" in spec.needs:
            old_log_prob = (ADVANTAGE_INPUTS.get() or {}).get("old_log_probs")
            if old_log_prob is None:
                raise MethodError(
                    f"method {method!r} ranks samples by π_old likelihood, which verl does not pass to an "
                    "advantage estimator; launch with `python -m steerbench.verl.main_ppo` (steerbench's shim)"
                )
        rewards = token_level_rewards.sum(dim=-1)  # outcome reward sits on the last token, as in verl's grpo
        with torch.no_grad():
            adv = compute_advantages(
                method,
                rewards.float(),
                group_ids(index, rewards.shape[0]),
                response_mask,
                old_log_prob=None if old_log_prob is None else old_log_prob.float(),
                **knobs,
            ).to(token_level_rewards.dtype)
        return adv, adv

    estimator.__name__ = f"steerbench_{method}_advantage"
    estimator.__qualname__ = estimator.__name__
    return estimator


POLICY_LOSSES: dict[str, Any] = {loss_name(m): make_policy_loss(m) for m in REGISTRY}
ADV_ESTIMATORS: dict[str, Any] = {
    name: make_adv_estimator(m) for m in REGISTRY if (name := estimator_name(m)) != "grpo"
}
# grpo's own shaper as an estimator too, to check it against verl's built-in grpo
ADV_ESTIMATORS[loss_name("grpo")] = make_adv_estimator("grpo")


def register_all() -> None:
    """Put every steerbench loss and estimator into verl's registries (idempotent)."""
    from verl.trainer.ppo import core_algos

    for name, fn in POLICY_LOSSES.items():
        if core_algos.POLICY_LOSS_REGISTRY.get(name) is not fn:
            core_algos.register_policy_loss(name)(fn)
    for name, fn in ADV_ESTIMATORS.items():
        if core_algos.ADV_ESTIMATOR_REGISTRY.get(name) is not fn:
            core_algos.register_adv_est(name)(fn)


def missing_registrations(method: str) -> list[str]:
    """Names the method needs that verl's registries in this process do not resolve."""
    from verl.trainer.ppo import core_algos

    missing = []
    if loss_name(method) not in core_algos.POLICY_LOSS_REGISTRY:
        missing.append(f"policy loss {loss_name(method)}")
    est = estimator_name(method)
    if est not in core_algos.ADV_ESTIMATOR_REGISTRY:
        missing.append(f"advantage estimator {est}")
    return missing


def entropy_sources(method: str, knobs: dict[str, Any] | None = None) -> frozenset[str]:
    """Which token entropy a method reads: "current" (π_θ's, detached), "current_grad" (π_θ's, with
    gradient) or "rollout" (π_old's at sampling time: verl's batch field ``entropy``; STEER's
    ``entropy=rollout``, the release). Empty for methods that read none."""
    spec = REGISTRY[method]
    needs = set(spec.needs)
    if "entropy_grad" in needs:
        return frozenset({"current_grad"})
    if "entropy" not in needs:
        return frozenset()
    choice = {**spec.knobs(), **(knobs or {})}.get("entropy", "current")
    return frozenset({"rollout" if choice == "rollout" else "current"})


def entropy_needs_grad(config: Any) -> bool:
    """True when the actor's entropy must keep its gradient: verl's own bonus (``entropy_coeff`` ≠ 0) or
    a steerbench method that trains through it (``entropy_bonus``)."""
    if float(_cfg_get(config, "entropy_coeff", 0.0) or 0.0) != 0.0:
        return True
    loss_mode = str(_cfg_get(_cfg_get(config, "policy_loss"), "loss_mode", ""))
    method = loss_mode[len(PREFIX) :] if loss_mode.startswith(PREFIX) else ""
    return method in REGISTRY and "current_grad" in entropy_sources(method)


@dataclass(frozen=True)
class ShimNeeds:
    entropy: bool  # the current policy's: actor.calculate_entropy=true and the ppo_loss wrapper
    old_entropy: bool  # π_old's, from the batch: the ppo_loss wrapper (the update forward computes none)
    ref_log_prob: bool  # use_kl_loss=true with kl_loss_coef=0 and the ppo_loss wrapper
    seq_log_prob: bool  # the compute_advantage wrapper in the trainer process

    @property
    def any(self) -> bool:
        return self.entropy or self.old_entropy or self.ref_log_prob or self.seq_log_prob


def shim_needs(method: str, knobs: dict[str, Any] | None = None) -> ShimNeeds:
    needs = set(REGISTRY[method].needs)
    sources = entropy_sources(method, knobs)
    return ShimNeeds(
        entropy=bool(sources & {"current", "current_grad"}),
        old_entropy="rollout" in sources,
        ref_log_prob="ref_log_prob" in needs,
        seq_log_prob="seq_log_prob" in needs,
    )
