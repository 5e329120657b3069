"""In-training Ω for verl (contract C4) on CPU tensors shaped like verl's right-padded (B, T) batch."""

from __future__ import annotations

import pytest
import torch
from omega_helpers import ToyLM
from omegaconf import OmegaConf

from steerbench.analysis.in_training import (
    BATCH_ESTIMATORS,
    agreement_metrics,
    batch_predictions,
    verl_batch_omega_metrics,
)
from steerbench.analysis.omega import RolloutBatch, measure_entropy_change
from steerbench.verl.omega import is_measured_step, omega_every


def verl_like_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded response tensors as verl's trainer holds them: 2 prompts × 4 samples, up to 7 tokens."""
    g = torch.Generator().manual_seed(seed)
    B, T = 8, 7
    lengths = torch.tensor([7, 3, 5, 7, 1, 6, 7, 2])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    logits = torch.randn(B, T, 11, generator=g) * 2
    logp = torch.log_softmax(logits, -1)
    sampled = torch.multinomial(logp.exp().reshape(-1, 11), 1, generator=g).reshape(B, T)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 1.2, -1.2, 0.3, -0.3])[:, None].expand(B, T) * mask
    return {
        "advantages": adv,
        "old_log_probs": logp.gather(-1, sampled[..., None]).squeeze(-1) * mask,
        "entropy": -(logp.exp() * logp).sum(-1) * mask,
        "response_mask": mask,
    }


def test_steer_release_from_the_batch_is_the_release_formula() -> None:
    b = verl_like_batch()
    pred = batch_predictions(b["advantages"], b["old_log_probs"], b["entropy"], b["response_mask"])
    p = b["old_log_probs"].double().exp().clamp(1e-8, 1 - 1e-8)
    omega = b["advantages"].double() / p * p * (1 - p) * (p.log() + b["entropy"].double())
    torch.testing.assert_close(pred["steer_release"], -omega * b["response_mask"].double())
    assert set(pred) == set(BATCH_ESTIMATORS)


def test_metrics_follow_the_measured_change_and_ignore_padding() -> None:
    b = verl_like_batch()
    m = b["response_mask"].bool()
    pred = batch_predictions(b["advantages"], b["old_log_probs"], b["entropy"], b["response_mask"])
    omega = pred["steer_release"]
    padded_garbage = torch.where(m, torch.zeros_like(omega), torch.full_like(omega, 1e6))
    agree = verl_batch_omega_metrics(b, b["entropy"] + 1e-3 * omega + padded_garbage)
    assert agree["omega/steer_release/pearson"] == pytest.approx(1.0, abs=1e-12)
    assert agree["omega/steer_release/spearman"] == pytest.approx(1.0, abs=1e-12)
    assert agree["omega/steer_release/sign_agreement"] == 1.0
    oppose = verl_batch_omega_metrics(b, b["entropy"] - 1e-3 * omega)
    assert oppose["omega/steer_release/pearson"] == pytest.approx(-1.0, abs=1e-12)
    assert oppose["omega/steer_release/sign_agreement"] == 0.0
    assert set(agree) == {
        f"omega/{e}/{k}" for e in BATCH_ESTIMATORS for k in ("pearson", "spearman", "sign_agreement")
    }


def test_batch_path_reproduces_a_real_measured_step() -> None:
    """A real SGD step of GRPO's loss on a float64 model, re-scored as the verl hook does: the batch-only
    predictions must agree with the measurement path's own (same tokens, same ΔH) statistic for statistic."""
    torch.manual_seed(1)
    model = ToyLM(vocab=13, d=10)
    g = torch.Generator().manual_seed(2)
    B, P, T = 8, 3, 6
    tokens = torch.randint(0, 13, (B, P + T), generator=g)
    mask = torch.ones(B, T)
    mask[2, 4:] = 0
    mask[5, 1:] = 0
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    batch = RolloutBatch(
        tokens, P, mask, ((rewards - 0.5) * 2)[:, None] * mask, rewards, torch.arange(B) // 4
    )
    res = measure_entropy_change(
        model, batch, "grpo", "sgd", 1e-3, 1.0, BATCH_ESTIMATORS, dtype=torch.float64
    )
    verl_batch = {
        "advantages": res.advantages,
        "old_log_probs": res.log_prob,
        "entropy": res.entropy,
        "response_mask": mask,
    }
    got = verl_batch_omega_metrics(verl_batch, res.entropy + res.measured)
    want = agreement_metrics(res.predicted, res.measured, res.response_mask)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_bad_batches_are_refused_with_the_reason() -> None:
    b = verl_like_batch()
    with pytest.raises(ValueError, match="lacks old_log_probs"):
        verl_batch_omega_metrics({k: v for k, v in b.items() if k != "old_log_probs"}, b["entropy"])
    with pytest.raises(ValueError, match="entropy_after has shape"):
        verl_batch_omega_metrics(b, b["entropy"][:, :-1])
    with pytest.raises(ValueError, match="need more than a verl batch"):
        batch_predictions(
            b["advantages"], b["old_log_probs"], b["entropy"], b["response_mask"], estimators=["jvp"]
        )


def test_omega_every_is_read_from_verls_trainer_config() -> None:
    assert omega_every(OmegaConf.create({"trainer": {}})) == 0
    every = omega_every(OmegaConf.create({"trainer": {"steerbench_omega_every": 3}}))
    assert [s for s in range(1, 10) if is_measured_step(s, every)] == [3, 6, 9]
    assert not any(is_measured_step(s, 0) for s in range(1, 10))
    with pytest.raises(ValueError, match="must be ≥ 0"):
        omega_every(OmegaConf.create({"trainer": {"steerbench_omega_every": -1}}))


def test_shimmed_trainer_leaves_unmeasured_steps_alone() -> None:
    """With Ω off, or on a step that is not a multiple of K, the hook adds no pass and no metric."""
    from steerbench.verl.shim import make_shimmed_trainer

    class Base:  # verl's v1 PPOTrainer is not importable on CPU (needs transfer_queue)
        def _update_actor(self, batch, metrics):
            metrics["actor/pg_loss"] = 0.1
            return batch

    class Batch:  # verl's KVBatchMeta: per-batch settings in extra_info
        extra_info: dict = {"temperature": 1.0}

    batch = Batch()
    for every, step in ((0, 4), (3, 4)):
        trainer = make_shimmed_trainer(Base)()
        trainer.config = OmegaConf.create({"trainer": {"steerbench_omega_every": every}})
        trainer.global_steps = step
        metrics: dict = {}
        assert trainer._update_actor(batch, metrics) is batch
        assert metrics == {"actor/pg_loss": 0.1}
