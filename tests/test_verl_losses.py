"""The verl plug-in contract: every steerbench method, called the way verl 0.9.1 calls a policy loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("verl")

from steerbench.methods import REGISTRY, PolicyBatch, compute_advantages, compute_policy_loss  # noqa: E402
from steerbench.verl import losses as sv  # noqa: E402
from steerbench.verl.tiny import worker_actor_config  # noqa: E402

_ROOT = Path(tempfile.mkdtemp(prefix="steerbench-verl-losses-"))
_ACTOR_CACHE: dict[tuple, object] = {}


def actor_config(method: str, knobs: dict | None = None):
    """A real worker-side ActorConfig: compose() → build_verl_launch → verl's Hydra config → dataclasses."""
    key = (method, tuple(sorted((knobs or {}).items())))
    if key not in _ACTOR_CACHE:
        _ACTOR_CACHE[key] = worker_actor_config(_ROOT, method, knobs)
    return _ACTOR_CACHE[key]


def make_tensors(seed: int = 0, b: int = 8, t: int = 12, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=dtype) * 3 - 0.05
    log_prob = (old + 0.3 * torch.randn(b, t, generator=g, dtype=dtype)).clamp(max=-1e-3).requires_grad_(True)
    adv = torch.randn(b, 1, generator=g, dtype=dtype).expand(b, t).contiguous()
    mask = torch.ones(b, t, dtype=torch.bool)
    for i in range(b):
        mask[i, t - i % 5 :] = False
    entropy = torch.rand(b, t, generator=g, dtype=dtype) * 2
    ref = old + 0.1 * torch.randn(b, t, generator=g, dtype=dtype)
    return old, log_prob, adv, mask, entropy, ref


def verl_call(name: str, config, tensors, extra: dict | None = None):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    old, log_prob, adv, mask, _, _ = tensors
    token = sv.EXTRA_INPUTS.set(extra or {})
    try:
        return get_policy_loss_fn(name)(
            old_log_prob=old,
            log_prob=log_prob,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode=config.loss_agg_mode,
            config=config,
            rollout_is_weights=None,
        )
    finally:
        sv.EXTRA_INPUTS.reset(token)


def test_plugin_entry_point_registers_every_method_in_a_fresh_process():
    code = (
        "import json, verl\n"
        "from verl.trainer.ppo.core_algos import get_policy_loss_fn, get_adv_estimator_fn\n"
        "from steerbench.methods import REGISTRY\n"
        "from steerbench.verl.losses import loss_name, estimator_name\n"
        "print(json.dumps({m: [callable(get_policy_loss_fn(loss_name(m))),"
        " callable(get_adv_estimator_fn(estimator_name(m)))] for m in REGISTRY}))\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "auto"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(found) == set(REGISTRY)
    assert all(all(v) for v in found.values())


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_through_verl_registry_equals_steerbench_methods(method):
    knobs = {"schedule": "constant", "weight": 0.5} if method == "pos_adv_reweight" else {}
    config = actor_config(method, knobs)
    tensors = make_tensors(seed=1)
    old, log_prob, adv, mask, entropy, ref = tensors
    needs = sv.shim_needs(method)
    extra = {}
    if needs.entropy:
        if "entropy_grad" in REGISTRY[method].needs:  # in verl the shim hands over the forward's entropy
            entropy = entropy.clone().requires_grad_(True)
        extra["entropy"] = entropy
    if needs.ref_log_prob:
        extra["ref_log_prob"] = ref
    old_entropy = entropy.detach() * 0.5 + 0.1  # π_old's, from the batch: differs from the current one
    if needs.old_entropy:
        extra["old_entropy"] = old_entropy
    torch.manual_seed(0)
    loss, metrics = verl_call(sv.loss_name(method), config, tensors, extra)
    batch = PolicyBatch(
        log_prob=log_prob,
        old_log_prob=old,
        advantages=adv,
        response_mask=mask,
        entropy=entropy if needs.entropy else None,
        ref_log_prob=ref if needs.ref_log_prob else None,
        old_entropy=old_entropy if needs.old_entropy else None,
    )
    expected_knobs = {k: v for k, v in {**REGISTRY[method].knobs(), **knobs}.items() if v is not None}
    expected_knobs.pop("norm_adv_by_std", None)
    torch.manual_seed(0)
    expected, expected_metrics = compute_policy_loss(method, batch, **expected_knobs)
    assert loss.ndim == 0 and loss.requires_grad
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    for k, v in expected_metrics.items():
        assert metrics[k] == pytest.approx(v)
    loss.backward()
    assert torch.isfinite(log_prob.grad).all()


@pytest.mark.parametrize("method", ["steer", "kl", "entropy_bonus"])
def test_methods_needing_extra_inputs_fail_clearly_without_the_shim(method):
    config = actor_config(method)
    with pytest.raises(ValueError, match="steerbench.verl.main_ppo"):
        verl_call(sv.loss_name(method), config, make_tensors())


@pytest.mark.parametrize(
    "mode",
    ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"],
)
@pytest.mark.parametrize("global_info", [False, True])
def test_grpo_equals_verl_vanilla_including_dp_normalisation(mode, global_info):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    config = actor_config("grpo", {"loss_agg_mode": mode})
    tensors = make_tensors(seed=3)
    old, log_prob, adv, mask, _, _ = tensors
    info = {}
    if global_info:  # this rank holds part of a dp_size=4 mini-batch, as ppo_loss sets it
        info = {
            "dp_size": 4,
            "batch_num_tokens": int(mask.sum()) * 3 + 7,
            "global_batch_size": 29,
            "loss_scale_factor": 16,
        }
    config.global_batch_info.clear()
    config.global_batch_info.update(info)
    try:
        kwargs = dict(
            old_log_prob=old,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode=mode,
            config=config,
            rollout_is_weights=None,
        )
        ours, ours_m = get_policy_loss_fn("steerbench_grpo")(log_prob=log_prob, **kwargs)
        ref, ref_m = get_policy_loss_fn("vanilla")(log_prob=log_prob, **kwargs)
    finally:
        config.global_batch_info.clear()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    (g_ours,) = torch.autograd.grad(ours, log_prob)
    (g_ref,) = torch.autograd.grad(ref, log_prob)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-6, atol=1e-8)
    for key in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower", "actor/ppo_kl"):
        assert ours_m[key] == pytest.approx(ref_m[key], abs=1e-6)


def test_steerbench_grpo_estimator_equals_verl_grpo():
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    g = torch.Generator().manual_seed(0)
    b, t = 12, 6
    mask = torch.ones(b, t)
    mask[:, 4:] = (torch.rand(b, 2, generator=g) > 0.5).float()
    rewards = torch.zeros(b, t)
    rewards[:, 3] = torch.randint(0, 2, (b,), generator=g).float() * 2 - 1
    index = [f"u{i // 4}" for i in range(b)]
    ref, _ = get_adv_estimator_fn("grpo")(token_level_rewards=rewards, response_mask=mask, index=index)
    ours, _ = get_adv_estimator_fn("steerbench_grpo")(
        token_level_rewards=rewards, response_mask=mask, index=index, config={}
    )
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_shaper_estimators_read_knobs_from_algorithm_and_old_log_probs_from_the_shim():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    b, t = 8, 5
    mask = torch.ones(b, t)
    rewards = torch.zeros(b, t)
    rewards[:, -1] = torch.tensor([1.0, 1, 0, 0, 1, 0, 1, 1])
    index = ["a"] * 4 + ["b"] * 4
    old = -torch.rand(b, t, generator=torch.Generator().manual_seed(0))
    algo = OmegaConf.create(
        {"norm_adv_by_std_in_grpo": True, "steerbench": {"positive_weight": 0.3, "beta": 0.5}}
    )
    w, _ = get_adv_estimator_fn("steerbench_w_reinforce")(
        token_level_rewards=rewards, response_mask=mask, index=index, config=algo
    )
    expected = compute_advantages(
        "w_reinforce", rewards.sum(-1), torch.tensor([0] * 4 + [1] * 4), mask, positive_weight=0.3
    )
    torch.testing.assert_close(w, expected)
    est = get_adv_estimator_fn("steerbench_unlikeliness")
    with pytest.raises(ValueError, match="steerbench.verl.main_ppo"):
        est(token_level_rewards=rewards, response_mask=mask, index=index, config=algo)
    token = sv.ADVANTAGE_INPUTS.set({"old_log_probs": old})
    try:
        u, _ = est(token_level_rewards=rewards, response_mask=mask, index=index, config=algo)
    finally:
        sv.ADVANTAGE_INPUTS.reset(token)
    expected = compute_advantages(
        "unlikeliness", rewards.sum(-1), torch.tensor([0] * 4 + [1] * 4), mask, old_log_prob=old, beta=0.5
    )
    torch.testing.assert_close(u, expected)


def test_policy_loss_config_subclass_carries_every_knob_and_converts():
    import dataclasses

    from verl.workers.config import PolicyLossConfig

    from steerbench.verl_plugin import SteerbenchPolicyLossConfig

    assert issubclass(SteerbenchPolicyLossConfig, PolicyLossConfig)
    fields = {f.name: f.default for f in dataclasses.fields(SteerbenchPolicyLossConfig)}
    for knob in (
        "lambda_min",
        "lambda_max",
        "mapping",
        "omega",
        "group_size",
        "beta",
        "alpha",
        "positive_weight",
    ):
        assert fields[knob] is None
    assert fields["kl_cov_ratio"] is None  # steerbench's kl_cov default depends on its variant
    cfg = actor_config(
        "steer",
        {"lambda_min": 0.5, "mapping": "linear", "lambda_max": 1.2, "clip_high": 0.28, "clip_c": 10.0},
    )
    assert type(cfg.policy_loss).__name__ == "SteerbenchPolicyLossConfig"
    assert (cfg.policy_loss.lambda_min, cfg.policy_loss.mapping, cfg.policy_loss.lambda_max) == (
        0.5,
        "linear",
        1.2,
    )
    assert (cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c) == (0.2, 0.28, 10.0)
    assert sv.knobs_from_actor_config("steer", cfg, cfg.loss_agg_mode)["lambda_min"] == 0.5


def test_rollout_correction_weights_are_refused_not_ignored():
    config = actor_config("grpo")
    old, log_prob, adv, mask, _, _ = make_tensors()
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    with pytest.raises(ValueError, match="rollout-correction"):
        get_policy_loss_fn("steerbench_grpo")(
            old_log_prob=old,
            log_prob=log_prob,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode="token-mean",
            config=config,
            rollout_is_weights=torch.ones_like(old),
        )
