"""steerbench's verl plug-in: importing this module registers every steerbench method in verl 0.9.1.

Loaded in every verl process three ways (any one suffices; all are idempotent):
  * the ``verl.plugins`` entry point ``steerbench = "steerbench.verl_plugin"`` (``import verl`` loads it);
  * Ray's ``worker_process_setup_hook=steerbench.verl_plugin.register``, which steerbench's launcher
    always adds as ``+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook`` (explicit, in the run config);
  * Hydra instantiating ``actor_rollout_ref.actor.policy_loss._target_=steerbench.verl_plugin.SteerbenchPolicyLossConfig``.

Registered names (uniform prefix, so nothing shadows verl's own ``clip_cov`` / ``kl_cov``):
  policy losses         ``steerbench_<method>`` for every method in ``steerbench.methods.REGISTRY``
  advantage estimators  ``steerbench_w_reinforce``, ``steerbench_unlikeliness``, ``steerbench_grpo``
                        (the other methods use verl's built-in ``grpo``, which equals ours)
"""

from __future__ import annotations

from steerbench.verl.losses import (
    ADV_ESTIMATORS,
    POLICY_LOSS_CONFIG_TARGET,
    POLICY_LOSSES,
    SteerbenchPolicyLossConfig,
    register_all,
)

__all__ = [
    "ADV_ESTIMATORS",
    "POLICY_LOSSES",
    "POLICY_LOSS_CONFIG_TARGET",
    "SteerbenchPolicyLossConfig",
    "register",
]

register_all()


def register() -> None:
    """Ray ``worker_process_setup_hook``: importing this module already registered everything."""
    register_all()
