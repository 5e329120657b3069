"""steerbench's verl plug-in: importing this module registers every steerbench method in verl 0.9.1.

Loaded in every verl process three ways (any one suffices; all are idempotent):
  * the ``verl.plugins`` entry point ``steerbench = "steerbench.verl_plugin"`` (``import verl`` loads it);
  * ``VERL_USE_EXTERNAL_MODULES=steerbench.verl_plugin``, which the Ray hook ``steerbench.verl.hook.register``
    sets in every worker process without importing verl or torch (see that module for why);
  * Hydra instantiating ``actor_rollout_ref.actor.policy_loss._target_=steerbench.verl_plugin.SteerbenchPolicyLossConfig``.

It also builds :class:`SteerbenchPolicyLossConfig`, verl's ``PolicyLossConfig`` plus the steerbench knobs:
here rather than in ``steerbench.verl.losses``, so that the launcher and the grid import ``losses``
without verl.

Registered names (uniform prefix, so nothing shadows verl's own ``clip_cov`` / ``kl_cov``):
  policy losses         ``steerbench_<method>`` for every method in ``steerbench.methods.REGISTRY``
  advantage estimators  ``steerbench_w_reinforce``, ``steerbench_unlikeliness``, ``steerbench_grpo``
                        (the other methods use verl's built-in ``grpo``, which equals ours)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from verl.workers.config import PolicyLossConfig

from steerbench.methods import REGISTRY
from steerbench.verl.losses import (
    ADV_ESTIMATORS,
    POLICY_LOSS_CONFIG_TARGET,
    POLICY_LOSSES,
    extra_knob_fields,
    register_all,
)

__all__ = ["ADV_ESTIMATORS", "POLICY_LOSSES", "POLICY_LOSS_CONFIG_TARGET", "SteerbenchPolicyLossConfig"]


def _make_policy_loss_config_class() -> type:
    inherited = {f.name: f for f in dataclasses.fields(PolicyLossConfig)}
    new_fields = []
    for knob in sorted(extra_knob_fields()):
        if knob in inherited:
            # keep verl's default where every steerbench method agrees with it (clip_cov_*), else None
            defaults = {spec.knobs()[knob] for spec in REGISTRY.values() if knob in spec.knobs()}
            if defaults == {inherited[knob].default}:
                continue
        new_fields.append((knob, Any, dataclasses.field(default=None)))
    cls = dataclasses.make_dataclass("SteerbenchPolicyLossConfig", new_fields, bases=(PolicyLossConfig,))
    cls.__module__ = __name__
    cls.__doc__ = (
        "verl's PolicyLossConfig plus every steerbench knob (default None: the method's own default). "
        f"Select with actor_rollout_ref.actor.policy_loss._target_={POLICY_LOSS_CONFIG_TARGET}."
    )
    return cls


SteerbenchPolicyLossConfig = _make_policy_loss_config_class()

register_all()
