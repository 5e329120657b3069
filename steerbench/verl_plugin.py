"""steerbench's verl plug-in: importing this module registers every steerbench method in verl 0.9.1.

Loaded in every verl process three ways (any one suffices; all are idempotent):
  * the ``verl.plugins`` entry point ``steerbench = "steerbench.verl_plugin"`` (``import verl`` loads it);
  * ``VERL_USE_EXTERNAL_MODULES=steerbench.verl_plugin``, which the Ray hook ``steerbench.verl.hook.register``
    sets in every worker process without importing verl or torch (see that module for why);
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

__all__ = ["ADV_ESTIMATORS", "POLICY_LOSSES", "POLICY_LOSS_CONFIG_TARGET", "SteerbenchPolicyLossConfig"]

register_all()
