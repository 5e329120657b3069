"""The one place steerbench goes beyond verl's registries: extra inputs for STEER, KL, entropy bonus, unlikeliness.

verl 0.9.1 calls a registered policy loss with ``old_log_prob, log_prob, advantages, response_mask,
loss_agg_mode, config, rollout_is_weights`` only, and an advantage estimator with
``token_level_rewards, response_mask, index, config``. Some methods need more:

* ``steer`` needs H_t, the full-vocabulary token entropy; ``entropy_bonus`` needs H_t *with gradient*;
  ``kl`` needs log π_ref. The actor's forward already computes H_t (``model_output["entropy"]`` with
  ``actor.calculate_entropy=true``) and the batch already holds ``ref_log_prob`` (with ``use_kl_loss=true``),
  but ``workers/utils/losses.py::ppo_loss`` drops both before calling the registry.
  :func:`extra_inputs_ppo_loss` wraps ``ppo_loss``: it pads them exactly as ``ppo_loss`` pads ``log_prob``,
  puts them in :data:`steerbench.verl.losses.EXTRA_INPUTS` for the duration of the call, and delegates.
  It is installed on every actor worker through verl's public RPC ``actor_rollout_wg.set_loss_fn``.
  **H_t is the current policy's entropy (π_θ at this micro-batch, detached for STEER)**; the STEER
  release used the rollout-time entropy of π_old. They coincide on the first mini-batch of an on-policy step.
* ``unlikeliness`` ranks each group's samples by mean log π_old. In the trainer process
  :func:`install_advantage_shim` wraps ``verl.trainer.ppo.v1.utils.compute_advantage`` so the estimator
  sees ``data.batch["old_log_probs"]``.

Both are installed by :class:`steerbench trainers <make_shimmed_trainer>` registered with verl's public
``register_trainer`` and selected by :class:`SteerbenchTaskRunner` (entry ``python -m steerbench.verl.main_ppo``).
Everything checks :func:`steerbench.verl.compat.require_verl` first: another verl fails loudly.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from steerbench.verl.compat import require_verl
from steerbench.verl.losses import ADVANTAGE_INPUTS, EXTRA_INPUTS

PPO_LOSS_INTERNALS = (
    "verl.workers.utils.losses:ppo_loss",
    "verl.workers.utils.padding:no_padding_2_padding",
    "verl.workers.engine_workers:ActorRolloutRefWorker.set_loss_fn",
)
ADVANTAGE_INTERNALS = ("verl.trainer.ppo.v1.utils:compute_advantage",)
TRAINER_INTERNALS = (
    "verl.trainer.ppo.v1.trainer_base:register_trainer",
    "verl.trainer.ppo.v1.trainer_base:get_trainer_cls",
    "verl.trainer.main_ppo:TaskRunnerV1",
)
SHIM_TRAINER_PREFIX = "steerbench+"


def extra_inputs_ppo_loss(config: Any, model_output: Any, data: Any, dp_group: Any = None):
    """verl's ``ppo_loss`` with the actor's entropy and the batch's ref log-probs handed to steerbench losses."""
    from verl.workers.utils.losses import ppo_loss
    from verl.workers.utils.padding import no_padding_2_padding

    extra: dict[str, Any] = {}
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        extra["entropy"] = no_padding_2_padding(entropy, data)  # grad kept; losses detach unless they need it
    if "ref_log_prob" in data.keys():
        extra["ref_log_prob"] = data.select("ref_log_prob").to_padded_tensor()["ref_log_prob"]
    token = EXTRA_INPUTS.set(extra)
    try:
        return ppo_loss(config, model_output, data, dp_group)
    finally:
        EXTRA_INPUTS.reset(token)


def make_worker_loss_fn(actor_config_omega: Any):
    """The picklable ``loss_fn`` to send with ``actor_rollout_wg.set_loss_fn`` (same config verl builds)."""
    require_verl(*PPO_LOSS_INTERNALS)
    from verl.utils.config import omega_conf_to_dataclass

    actor_config = omega_conf_to_dataclass(actor_config_omega)
    return partial(extra_inputs_ppo_loss, config=actor_config)


def install_advantage_shim() -> None:
    """Wrap ``verl.trainer.ppo.v1.utils.compute_advantage`` so estimators can read ``old_log_probs``."""
    require_verl(*ADVANTAGE_INTERNALS)
    import verl.trainer.ppo.v1.utils as v1_utils

    original = v1_utils.compute_advantage
    if getattr(original, "_steerbench_shim", False):
        return

    def compute_advantage(data: Any, *args: Any, **kwargs: Any):
        old = data.batch.get("old_log_probs", None) if hasattr(data, "batch") else None
        token = ADVANTAGE_INPUTS.set({} if old is None else {"old_log_probs": old})
        try:
            return original(data, *args, **kwargs)
        finally:
            ADVANTAGE_INPUTS.reset(token)

    compute_advantage._steerbench_shim = True  # type: ignore[attr-defined]
    v1_utils.compute_advantage = compute_advantage


def make_shimmed_trainer(base: type) -> type:
    """A subclass of a verl v1 trainer that installs both shims right after ``init()`` built the workers."""

    class SteerbenchTrainer(base):  # type: ignore[misc,valid-type]
        def init(self) -> None:
            super().init()
            install_advantage_shim()
            loss_fn = make_worker_loss_fn(self.config.actor_rollout_ref.actor)
            self.actor_rollout_wg.set_loss_fn(loss_fn)

    SteerbenchTrainer.__name__ = SteerbenchTrainer.__qualname__ = f"Steerbench{base.__name__}"
    return SteerbenchTrainer


def select_shimmed_trainer(config: Any) -> str:
    """Register the shimmed twin of ``trainer.v1.trainer_mode`` and point the config at it (in place)."""
    require_verl(*PPO_LOSS_INTERNALS, *ADVANTAGE_INTERNALS, *TRAINER_INTERNALS)
    from omegaconf import open_dict
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, get_trainer_cls, register_trainer

    mode = str(config.trainer.v1.trainer_mode)
    if mode.startswith(SHIM_TRAINER_PREFIX):
        return mode
    name = SHIM_TRAINER_PREFIX + mode
    if name not in TRAINER_REGISTRY:
        register_trainer(name)(make_shimmed_trainer(get_trainer_cls(mode)))
    with open_dict(config):
        config.trainer.v1.trainer_mode = name
    return name


def task_runner_class():
    """A Ray actor class: verl's ``TaskRunnerV1`` that first swaps in the shimmed trainer."""
    require_verl("verl.trainer.main_ppo:TaskRunnerV1")
    import ray
    from verl.trainer.main_ppo import TaskRunnerV1

    base = TaskRunnerV1.__ray_metadata__.modified_class

    class SteerbenchTaskRunner(base):  # type: ignore[misc,valid-type]
        def run(self, config: Any):
            import steerbench.verl_plugin  # noqa: F401  (registers losses in this process too)

            select_shimmed_trainer(config)
            return super().run(config)

    return ray.remote(SteerbenchTaskRunner)
