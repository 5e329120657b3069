"""``python -m steerbench.verl.main_ppo KEY=VALUE ...``: verl's ``main_ppo`` with steerbench's shim.

Same Hydra config (``verl/trainer/config/ppo_trainer.yaml``), same validation and same ``run_ppo`` as
``python -m verl.trainer.main_ppo``; the only difference is the TaskRunner
(:func:`steerbench.verl.shim.task_runner_class`), which installs the entropy / ref-log-prob /
old-log-prob shim for methods that need it (steer, entropy_bonus, kl, unlikeliness) and the per-step
knob schedule (pos_adv_reweight). Before anything
starts, a pre-flight checks that the selected loss and estimator resolve, exiting 2 otherwise.
"""

from __future__ import annotations

import sys

import hydra

from steerbench.verl.losses import register_all
from steerbench.verl.shim import task_runner_class


def preflight(config) -> None:
    """Exit 2 if the configured policy loss or advantage estimator does not resolve in verl's registries."""
    from verl.trainer.ppo import core_algos

    register_all()  # as importing steerbench.verl_plugin does
    loss_mode = config.actor_rollout_ref.actor.policy_loss.get("loss_mode", "vanilla")
    estimator = str(config.algorithm.adv_estimator)
    problems = []
    if loss_mode not in core_algos.POLICY_LOSS_REGISTRY:
        problems.append(f"policy loss {loss_mode!r} is not registered")
    if estimator not in core_algos.ADV_ESTIMATOR_REGISTRY and estimator != "gae":
        problems.append(f"advantage estimator {estimator!r} is not registered")
    if problems:
        print("steerbench pre-flight failed: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(2)


@hydra.main(config_path="pkg://verl.trainer.config", config_name="ppo_trainer", version_base=None)
def main(config) -> None:
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    preflight(config)
    if not config.trainer.use_v1:
        print("steerbench's shim supports verl's v1 trainer only; set trainer.use_v1=true", file=sys.stderr)
        raise SystemExit(2)
    run_ppo(config, task_runner_class=task_runner_class())


if __name__ == "__main__":
    main()
