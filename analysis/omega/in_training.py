"""Ω validation during training, for both backends: agreement of predicted and measured ΔH, logged as metrics.

Embedded backend (:func:`omega_step_metrics`, run by :func:`embedded_omega_metrics` as the trainer's hook): every K steps, one measured SGD step on a fresh batch, on a
deep copy of the policy with its own generator, so the run's trajectory (and its bit-reproducibility) is
the same with or without it.

verl backend (:func:`verl_batch_omega_metrics`): every K steps, after the actor update, the same batch's
response tokens are re-scored by the updated policy, so per token

    measured ΔH_t = H_after(s_t) − H_before(s_t)      (H_before = π_old's rollout entropy, the batch's "entropy")

and each estimator computable from the batch's own tensors predicts it (:data:`BATCH_ESTIMATORS`: the ones
that need neither the full logits, like ``softmax_full``, nor the parameter step, like ``jvp``). With
π_θ = π_old (r = 1, as on the first mini-batch of an on-policy step) ``steer_release`` is exactly the Ω the
STEER loss computes for those tokens. The measured change is that of the whole update (every mini-batch and
epoch, with the run's optimiser), so Pearson/Spearman/sign agreement are the fair statistics, not the slope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from steerbench.analysis.omega.estimators import ESTIMATORS, EstimatorInputs
from steerbench.analysis.omega.measure import measure_entropy_change
from steerbench.analysis.omega.rollouts import make_batch
from steerbench.analysis.omega.stats import point_stats
from steerbench.config import method_knobs
from steerbench.local.trainer import EVAL_SEED, task_prompts
from steerbench.rewards import coin_flips
from steerbench.tasks.core import Task, score

LOGGED = ("pearson", "spearman", "sign_agreement")
BATCH_ESTIMATORS = ("steer_release", "steer_paper", "cov")  # computable from a verl batch alone
VERL_FIELDS = ("advantages", "old_log_probs", "entropy", "response_mask")  # (B, T) each, right-padded


def agreement_metrics(
    predicted: Mapping[str, torch.Tensor], measured: torch.Tensor, valid: torch.Tensor
) -> dict[str, float]:
    """``omega/<estimator>/{pearson,spearman,sign_agreement}`` over the ``valid`` tokens (undefined → absent)."""
    keep = valid.bool().cpu().numpy()
    y = measured.detach().to(torch.float64).cpu().numpy()[keep]
    metrics: dict[str, float] = {}
    for name, pred in predicted.items():
        stats = point_stats(pred.detach().to(torch.float64).cpu().numpy()[keep], y)
        for key in LOGGED:
            if np.isfinite(stats[key]):
                metrics[f"omega/{name}/{key}"] = stats[key]
    return metrics


def omega_step_metrics(
    policy: nn.Module,
    prompts: torch.Tensor,
    reward_fn: Any,
    method: str,
    knobs: dict[str, Any],
    *,
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    eos_id: int,
    seed: int,
    lr: float,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """``omega/<estimator>/{pearson,spearman,sign_agreement}`` of one SGD step at ``lr`` (``reference``:
    the run's reference policy, for methods whose loss needs one)."""
    generator = torch.Generator().manual_seed(seed)
    batch = make_batch(
        policy,
        prompts,
        group_size,
        max_new_tokens,
        temperature,
        eos_id,
        reward_fn,
        method,
        generator,
        knobs,
        reference=reference,
    )
    result = measure_entropy_change(policy, batch, method, "sgd", lr, temperature, tuple(ESTIMATORS), knobs)
    return agreement_metrics(result.predicted, result.measured, result.response_mask)


def embedded_omega_metrics(
    cfg: DictConfig, task: Task, policy: nn.Module, reference: nn.Module | None, step: int
) -> dict[str, float]:
    """The embedded trainer's ``step_metrics`` hook: how well each Ω estimator predicts one real SGD
    step's entropy change, on a fresh batch of the run's task and reward."""
    t = cfg.trainer
    problems = task.sample_problems(t.prompts_per_step, torch.Generator().manual_seed(EVAL_SEED + step))

    def reward(prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if cfg.scenario.random_reward:  # the same reward as the run's
            return coin_flips(len(responses), torch.Generator().manual_seed(step))
        return score(task, [p for p in problems for _ in range(t.samples_per_prompt)], responses)

    return omega_step_metrics(
        policy,
        task_prompts(task, problems, policy),
        reward,
        cfg.method.name,
        method_knobs(cfg),
        group_size=t.samples_per_prompt,
        max_new_tokens=task.max_response_len,
        temperature=t.temperature,
        eos_id=task.tokenizer.eos_id,
        seed=EVAL_SEED + 31 * step + t.seed,
        lr=t.omega_lr,
        reference=reference,
    )


def batch_predictions(
    advantages: torch.Tensor,
    old_log_probs: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    lr: float = 1.0,
    estimators: Sequence[str] = BATCH_ESTIMATORS,
) -> dict[str, torch.Tensor]:
    """Each estimator's predicted ΔH ``(B, T)`` from a batch's tensors, at π_θ = π_old (r = 1, token-mean c_t)."""
    unknown = [e for e in estimators if e not in BATCH_ESTIMATORS]
    if unknown:
        raise ValueError(
            f"estimator(s) {', '.join(unknown)} need more than a verl batch holds; "
            f"choose from {', '.join(BATCH_ESTIMATORS)}"
        )
    mask = response_mask.to(torch.float64)
    lp = old_log_probs.to(torch.float64)
    inputs = EstimatorInputs(
        log_prob=lp,
        old_log_prob=lp,
        advantages=advantages.to(torch.float64) * mask,
        entropy=entropy.to(torch.float64),
        response_mask=response_mask,
        lr=lr,
    )
    return {name: ESTIMATORS[name](inputs) for name in estimators}


def verl_batch_omega_metrics(
    batch: Mapping[str, torch.Tensor],
    entropy_after: torch.Tensor,
    estimators: Sequence[str] = BATCH_ESTIMATORS,
) -> dict[str, float]:
    """Agreement of each estimator with ΔH = ``entropy_after`` − ``batch["entropy"]`` on the response tokens.

    ``batch`` holds verl's right-padded ``(B, T)`` tensors :data:`VERL_FIELDS`; ``entropy_after`` is the
    updated policy's per-token entropy of the same responses, same shape.
    """
    missing = [k for k in VERL_FIELDS if k not in batch]
    if missing:
        raise ValueError(
            f"the batch lacks {', '.join(missing)}; in-training Ω needs {', '.join(VERL_FIELDS)}"
        )
    mask = batch["response_mask"].bool()
    for name in ("advantages", "old_log_probs", "entropy"):
        if tuple(batch[name].shape) != tuple(mask.shape):
            raise ValueError(
                f"batch[{name!r}] has shape {tuple(batch[name].shape)}, expected {tuple(mask.shape)}"
            )
    if tuple(entropy_after.shape) != tuple(mask.shape):
        raise ValueError(
            f"entropy_after has shape {tuple(entropy_after.shape)}, expected {tuple(mask.shape)}"
        )
    before = batch["entropy"].to(torch.float64)
    measured = (entropy_after.to(torch.float64) - before) * mask
    predicted = batch_predictions(
        batch["advantages"], batch["old_log_probs"], before, mask, estimators=estimators
    )
    return agreement_metrics(predicted, measured, mask)
