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
   :func:`steerbench.analysis.in_training.verl_batch_omega_metrics` (pure, tested on CPU tensors).
"""

from __future__ import annotations

from typing import Any

from steerbench.verl.compat import require_verl

OMEGA_EVERY_KEY = "steerbench_omega_every"
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
    """
    if not is_measured_step(int(trainer.global_steps), omega_every(trainer.config)):
        return
    require_verl(*OMEGA_INTERNALS)
    import transfer_queue as tq
    from verl.workers.utils.padding import response_from_nested

    from steerbench.analysis.in_training import VERL_FIELDS, verl_batch_omega_metrics

    before = tq.kv_batch_get(
        keys=batch.keys, partition_id=batch.partition_id, select_fields=list(VERL_FIELDS)
    )
    after_update = batch.extra_info
    batch.extra_info = {
        **extra_info,
        "calculate_entropy": True,
        "compute_loss": False,
        "temperature": trainer.config.actor_rollout_ref.rollout.temperature,
    }
    try:
        trainer.actor_rollout_wg.compute_log_prob(batch)
    finally:
        batch.extra_info = after_update
    after = tq.kv_batch_get(
        keys=batch.keys, partition_id=batch.partition_id, select_fields=["entropy", "response_mask"]
    )
    tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=before.select("entropy"))
    before["entropy_after"] = response_from_nested(after["entropy"], after["response_mask"])
    padded = before.to_padded_tensor()
    fields = {k: padded[k] for k in VERL_FIELDS}
    real = [not tag.get("is_padding", False) for tag in batch.tags]  # rows verl added for divisibility
    fields["response_mask"] = fields["response_mask"] * padded["response_mask"].new_tensor(real)[:, None]
    metrics.update(verl_batch_omega_metrics(fields, padded["entropy_after"]))
