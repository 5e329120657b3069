"""The shim: steerbench losses get the actor's entropy and ref log-probs through verl's real ppo_loss,
and the setup hook registers the losses inside a real Ray worker process."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("verl")

from steerbench.methods import PolicyBatch, compute_policy_loss  # noqa: E402
from steerbench.verl.launch import compose_overrides, validate_overrides  # noqa: E402


def worker_actor_config(method: str):
    from verl.utils.config import omega_conf_to_dataclass

    base = {
        "model_path": "/m",
        "train_files": "t.parquet",
        "val_files": "v.parquet",
        "out": "/tmp/x",
        "method": method,
    }
    overrides, _ = compose_overrides(base)
    return omega_conf_to_dataclass(validate_overrides(overrides, method=method).actor_rollout_ref.actor)


def engine_batch(b: int = 4, p: int = 3, t: int = 6, seed: int = 0):
    """A micro-batch as verl's engine hands it to ppo_loss: padded prompts/responses, flat model outputs."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    g = torch.Generator().manual_seed(seed)
    response_mask = torch.ones(b, t, dtype=torch.long)
    for i in range(b):
        response_mask[i, t - i :] = 0
    attention_mask = torch.cat([torch.ones(b, p, dtype=torch.long), response_mask], dim=1)
    total = int(attention_mask.sum())
    data = TensorDict(
        {
            "prompts": torch.ones(b, p, dtype=torch.long),
            "responses": torch.ones(b, t, dtype=torch.long),
            "attention_mask": attention_mask,
            "response_mask": response_mask,
            "old_log_probs": -torch.rand(b, t, generator=g) - 0.1,
            "advantages": torch.randn(b, 1, generator=g).expand(b, t).contiguous(),
            "ref_log_prob": -torch.rand(b, t, generator=g) - 0.1,
        },
        batch_size=[b],
    )
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=b)
    flat_log_probs = (-torch.rand(total, generator=g) - 0.1).requires_grad_(True)
    flat_entropy = torch.rand(total, generator=g) * 2
    return data, {"log_probs": flat_log_probs, "entropy": flat_entropy}


@pytest.mark.parametrize("method", ["steer", "kl"])
def test_extra_inputs_reach_steerbench_losses_through_verls_real_ppo_loss(method):
    from verl.workers.utils.padding import no_padding_2_padding

    import steerbench.verl_plugin  # noqa: F401
    from steerbench.verl.shim import extra_inputs_ppo_loss

    config = worker_actor_config(method)
    data, model_output = engine_batch()
    loss, metrics = extra_inputs_ppo_loss(config, model_output, data)
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    mask = data["response_mask"].bool()
    batch = PolicyBatch(
        log_prob=log_prob,
        old_log_prob=data["old_log_probs"],
        advantages=data["advantages"],
        response_mask=mask,
        entropy=no_padding_2_padding(model_output["entropy"], data).detach() if method == "steer" else None,
        ref_log_prob=data["ref_log_prob"] if method == "kl" else None,
    )
    expected, _ = compute_policy_loss(
        method,
        batch,
        clip_low=config.clip_ratio_low,
        clip_high=config.clip_ratio_high,
        clip_c=config.clip_ratio_c,
    )
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)  # entropy_coeff=0, kl_loss_coef=0
    assert "actor/pg_loss" in metrics


def test_the_shim_checks_the_verl_version_and_internals(monkeypatch):
    import verl

    from steerbench.verl.compat import VerlCompatError, require_verl

    require_verl("verl.workers.utils.losses:ppo_loss")
    with pytest.raises(VerlCompatError, match="needs porting"):
        require_verl("verl.workers.utils.losses:ppo_loss_that_moved")
    monkeypatch.setattr(verl, "__version__", "0.10.0")
    with pytest.raises(VerlCompatError, match="pinned to verl==0.9.1"):
        require_verl()


def test_task_runner_is_verls_v1_runner_as_a_ray_actor_class():
    from verl.trainer.main_ppo import TaskRunnerV1

    from steerbench.verl.shim import task_runner_class

    runner = task_runner_class()
    assert hasattr(runner, "remote")
    assert issubclass(runner.__ray_metadata__.modified_class, TaskRunnerV1.__ray_metadata__.modified_class)


@pytest.mark.slow
def test_setup_hook_registers_losses_inside_a_real_ray_worker():
    import ray

    @ray.remote
    def registered() -> list[str]:
        from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

        return sorted(k for k in POLICY_LOSS_REGISTRY if k.startswith("steerbench_"))

    ray.init(
        num_cpus=1,
        include_dashboard=False,
        runtime_env={
            "worker_process_setup_hook": "steerbench.verl_plugin.register",
            "env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none"},  # prove the hook alone suffices
        },
    )
    try:
        names = ray.get(registered.remote(), timeout=300)
    finally:
        ray.shutdown()
    from steerbench.methods import REGISTRY

    assert names == sorted(f"steerbench_{m}" for m in REGISTRY)
