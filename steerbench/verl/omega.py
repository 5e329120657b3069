"""In-training Ω for verl runs: every K steps, after the actor update, re-score the batch and log Ω's accuracy.

Enabled by ``+trainer.steerbench_omega_every=K`` in verl's config (steerbench's ``trainer.omega_every``;
0 = off). The shimmed trainer (``steerbench.verl.shim``) calls :func:`after_actor_update` right after
``PPOTrainer._update_actor``. On a measured step it

1. reads the batch's ``advantages``, ``old_log_probs``, ``entropy`` (π_old's, H_before) and
   ``response_mask`` from the TransferQueue;
2. runs ``actor_rollout_wg.compute_log_prob`` once more (entropy on, no loss): the updated policy's
   entropy H_after at the same response tokens, the one extra log-prob pass this costs;
3. puts π_old's entropy back, so nothing read later in the step sees the updated policy's;
4. logs ``omega/<estimator>/{pearson,spearman,sign_agreement}`` from
   :func:`steerbench.analysis.omega.in_training.verl_batch_omega_metrics` (pure, tested on CPU tensors), and
   ``omega/error`` (0.0; 1.0 when any of 1-4 failed: the run goes on, see :func:`after_actor_update`).
"""

from __future__ import annotations

import traceback
import warnings
from typing import Any

from steerbench.analysis.omega.in_training import VERL_FIELDS, verl_batch_omega_metrics
from steerbench.verl.compat import require_verl

OMEGA_EVERY_KEY = "steerbench_omega_every"
OMEGA_ERROR_METRIC = "omega/error"  # stable name (docs/verl.md): 1.0 when a measured step's probe failed
OMEGA_INTERNALS = (
    "verl.trainer.ppo.v1.trainer_base:PPOTrainer._update_actor",
    "verl.workers.utils.padding:response_from_nested",
)


def omega_every(config: Any) -> int:
    """K from ``config.trainer.steerbench_omega_every`` (absent → 0, off)."""
    every = int(config.trainer.get(OMEGA_EVERY_KEY, 0) or 0)
    if every < 0:
        raise ValueError(f"trainer.{OMEGA_EVERY_KEY}={every} must be ≥ 0 (0 = off)")
    return every


def is_measured_step(global_step: int, every: int) -> bool:
    return every > 0 and global_step % every == 0


def after_actor_update(trainer: Any, batch: Any, metrics: dict, extra_info: dict) -> None:
    """On every K-th global step, add in-training Ω metrics for ``batch`` (a ``KVBatchMeta``) to ``metrics``.

    ``extra_info``: the batch's settings before ``_update_actor`` added the update's (mini-batch size,
    epochs, ...), so the extra pass runs exactly like ``_compute_old_log_prob``'s; restored afterwards.

    Fail-safe: Ω is a diagnostic, so a failure of the probe (a moved verl/TransferQueue internal, a missing
    field, a worker error) must not end a run hours in. It is logged as ``omega/error`` = 1.0 (0.0 on a
    measured step that worked) plus a ``RuntimeWarning`` naming the exception; ``batch.extra_info`` and the
    queue's ``entropy`` are restored; training goes on.
    """
    if not is_measured_step(int(trainer.global_steps), omega_every(trainer.config)):
        return
    after_update = batch.extra_info
    saved: dict = {}  # π_old's entropy once read, put back whatever fails after that
    try:
        omega = _probe(trainer, batch, extra_info, saved)
    except Exception as exc:
        omega = {OMEGA_ERROR_METRIC: 1.0}
        _warn(trainer, "failed", exc)
    finally:
        batch.extra_info = after_update
    if saved:
        try:
            import transfer_queue as tq

            tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=saved["entropy"])
        except Exception as exc:  # left as the updated policy's; verl 0.9.1 reads no entropy after the update
            omega = {**omega, OMEGA_ERROR_METRIC: 1.0}
            _warn(trainer, "could not restore π_old's entropy", exc)
    metrics.update(omega)  # all or nothing: no partial omega/* set from a failed probe


def _warn(trainer: Any, what: str, exc: BaseException) -> None:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename}:{where[0].lineno} in {where[0].name})" if where else ""
    warnings.warn(
        f"in-training Ω {what} at step {trainer.global_steps}: {type(exc).__name__}: {exc}{at}; "
        f"logged as {OMEGA_ERROR_METRIC}=1, training continues",
        RuntimeWarning,
        stacklevel=3,
    )


def _probe(trainer: Any, batch: Any, extra_info: dict, saved: dict) -> dict[str, float]:
    require_verl(*OMEGA_INTERNALS)
    import transfer_queue as tq
    from verl.workers.utils.padding import response_from_nested

    before = tq.kv_batch_get(
        keys=batch.keys, partition_id=batch.partition_id, select_fields=list(VERL_FIELDS)
    )
    saved["entropy"] = before.select("entropy")
    batch.extra_info = {
        **extra_info,
        "calculate_entropy": True,
        "compute_loss": False,
        "temperature": trainer.config.actor_rollout_ref.rollout.temperature,
    }
    # the worker overwrites `entropy` (and `log_probs`, read by nothing after the update in verl 0.9.1)
    # with the updated policy's, over prompt + response like every compute_log_prob output
    trainer.actor_rollout_wg.compute_log_prob(batch)
    after = tq.kv_batch_get(
        keys=batch.keys, partition_id=batch.partition_id, select_fields=["entropy", "response_mask"]
    )
    before["entropy_after"] = response_from_nested(after["entropy"], after["response_mask"])
    padded = before.to_padded_tensor()
    fields = {k: padded[k] for k in VERL_FIELDS}
    real = [not tag.get("is_padding", False) for tag in batch.tags]  # rows verl added for divisibility
    fields["response_mask"] = fields["response_mask"] * padded["response_mask"].new_tensor(real)[:, None]
    return {**verl_batch_omega_metrics(fields, padded["entropy_after"]), OMEGA_ERROR_METRIC: 0.0}
