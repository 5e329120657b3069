"""In-training Ω for verl (contract C4): on CPU tensors shaped like verl's right-padded (B, T) batch, and the
hook itself against a real TransferQueue and verl's own trainer methods."""

from __future__ import annotations

import pytest
import torch
from omega_helpers import ToyLM
from omegaconf import OmegaConf

from steerbench.analysis.omega.in_training import (
    BATCH_ESTIMATORS,
    agreement_metrics,
    batch_predictions,
    verl_batch_omega_metrics,
)
from steerbench.analysis.omega.measure import RolloutBatch, measure_entropy_change
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

    class Base:  # a bare base: unmeasured steps touch nothing of verl or the queue
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


# ---- the hook against a real TransferQueue 0.1.11 and verl 0.9.1's own trainer code ----------------------
# Only the actor worker group is a stand-in: its compute_log_prob goes through verl's own ``tqbridge`` (the
# decorator every verl worker method has), so it reads the batch from the queue and writes its outputs back
# exactly as a GPU worker would; the rest (``_compute_old_log_prob``, ``_update_actor``, the shim, the
# queue's storage, nested layout and tags) is verl's and TransferQueue's real code.

# (prompt_len, response_len, advantage, is_padding): the last row is one verl adds for divisibility
QUEUE_ROWS = ((3, 4, 1.0, False), (2, 6, -1.0, False), (4, 2, 0.5, False), (3, 5, -0.5, False))
QUEUE_ROWS += ((2, 1, 0.0, True),)


def _policy(ids: torch.Tensor, version: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A stand-in policy's (log_probs, entropy) at every position of prompt + response (position t: the
    distribution of token t + 1), as verl's workers return them; ``version`` counts the actor updates."""
    t = torch.arange(len(ids), dtype=torch.float32) + 0.7 * version
    return -(0.6 + 0.5 * torch.cos(0.9 * ids + t)), 1.0 + 0.5 * torch.sin(1.3 * ids + 0.3 * t)


def _actor_wg():
    """verl's actor worker group as the trainer sees it (KVBatchMeta in, outputs written to the queue)."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.utils.transferqueue_utils import tqbridge

    class ActorWG:
        def __init__(self):
            self.version, self.calls, self.fail = 0, [], None

        @tqbridge()
        def compute_log_prob(self, data):
            info = ("calculate_entropy", "compute_loss", "temperature", "epochs")
            self.calls.append({k: tu.get(data, k) for k in info})
            if self.fail is not None:
                raise self.fail
            out = [_policy(ids, self.version) for ids in data["input_ids"].unbind()]
            fields = {"log_probs": torch.nested.as_nested_tensor([lp for lp, _ in out], layout=torch.jagged)}
            if tu.get(data, "calculate_entropy"):
                fields["entropy"] = torch.nested.as_nested_tensor([h for _, h in out], layout=torch.jagged)
            return TensorDict(fields, batch_size=[len(out)])

        def update_actor(self, batch):  # the update changes the policy; verl returns the worker's metrics
            self.version, self.update_info = self.version + 1, dict(batch.extra_info)
            return {"metrics": {"pg_loss": 0.1, "mfu": 0.0}}

    return ActorWG()


@pytest.fixture(scope="module")
def real_queue():
    """TransferQueue as ``verl.trainer.main_ppo`` starts it (``tq.init`` in a Ray driver), on CPU."""
    pytest.importorskip("verl")
    tq = pytest.importorskip("transfer_queue")
    import ray
    import verl.utils.transferqueue_utils as tq_bridge

    # logical CPUs: the queue's controller and its one storage unit are Ray actors of one CPU each
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        yield tq
    finally:
        tq.close()
        tq_bridge.TQ_INITIALIZED = False  # verl's bridge would skip tq.init() against a later queue
        ray.shutdown()


@pytest.fixture(scope="module")
def queue_config(tmp_path_factory):
    """verl's composed config of a grpo run with trainer.omega_every=2, as the launcher builds it."""
    from steerbench.verl.tiny import verl_config

    return verl_config(tmp_path_factory.mktemp("omega_queue"), "grpo", "trainer.omega_every=2")


def _queued_step(tq, config, tag: str):
    """A measured step up to the actor update, on the real queue: the agent loop's samples, verl's own
    ``_compute_old_log_prob`` (π_old's entropy/log-probs via the worker), then advantages written as
    ``_compute_advantage`` writes them. Returns the shimmed trainer, the batch and the expected tensors."""
    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict
    from verl.workers.utils.padding import response_to_nested

    from steerbench.verl.shim import make_shimmed_trainer

    g = torch.Generator().manual_seed(0)
    keys, samples, tags = [], [], []
    for i, (L, R, _, pad) in enumerate(QUEUE_ROWS):
        ids = torch.randint(0, 50, (L + R,), generator=g)
        keys.append(f"{tag}{i}_0_0")
        samples.append(
            {  # as AgentLoopWorkerTQ._agent_loop_postprocess puts them
                "prompts": ids[:L],
                "responses": ids[L:],
                "response_mask": torch.ones(R, dtype=torch.int64),
                "input_ids": ids,
                "attention_mask": torch.ones(L + R, dtype=torch.int64),
                "rollout_log_probs": -torch.rand(R, generator=g),
            }
        )
        tags.append({"status": "success", "prompt_len": L, "response_len": R, "seq_len": L + R})
        tags[-1].update({"global_steps": 2, "is_padding": True} if pad else {"global_steps": 2})
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(samples), tags=tags)

    trainer = object.__new__(make_shimmed_trainer(PPOTrainerSync))  # verl's methods, none of its set-up
    trainer.config, trainer.global_steps, trainer.actor_rollout_wg = config, 2, _actor_wg()
    batch = KVBatchMeta(keys=keys, tags=tags, partition_id="train", extra_info={"temperature": 1.0})
    batch = trainer._compute_old_log_prob(batch, {})
    mask = tq.kv_batch_get(keys=keys, partition_id="train", select_fields="response_mask")["response_mask"]
    B, T = len(QUEUE_ROWS), max(R for _, R, _, _ in QUEUE_ROWS)
    adv = torch.tensor([a for _, _, a, _ in QUEUE_ROWS])[:, None].expand(B, T).contiguous()
    out = {"advantages": response_to_nested(adv, mask), "returns": response_to_nested(adv, mask)}
    from tensordict import TensorDict

    batch = tq.kv_batch_put(keys=keys, partition_id="train", fields=TensorDict(out, batch_size=[B]))

    # the same step computed here on right-padded (B, T) tensors, independently of the queue
    names = ("advantages", "old_log_probs", "entropy", "response_mask", "after")
    want = {k: torch.zeros(B, T) for k in names}
    for i, ((L, R, a, pad), s) in enumerate(zip(QUEUE_ROWS, samples, strict=True)):
        (lp, h), (_, h_after) = _policy(s["input_ids"], 0), _policy(s["input_ids"], 1)
        resp = slice(L - 1, L + R - 1)  # the positions that predict the response tokens
        want["old_log_probs"][i, :R], want["entropy"][i, :R] = lp[resp], h[resp]
        want["after"][i, :R] = h_after[resp]
        want["advantages"][i, :R], want["response_mask"][i, :R] = a, 0.0 if pad else 1.0
    return trainer, batch, want


def _queue_entropy(tq, batch) -> torch.Tensor:
    got = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields="entropy")
    return got.to_padded_tensor()["entropy"]


@pytest.mark.slow
def test_hook_on_a_real_transfer_queue_logs_the_batch_omega_and_restores_the_batch(real_queue, queue_config):
    from steerbench.verl.omega import OMEGA_ERROR_METRIC

    trainer, batch, want = _queued_step(real_queue, queue_config, "ok")
    metrics: dict = {}
    assert trainer._update_actor(batch, metrics) is batch  # the shim: verl's update, then the Ω hook

    expected = verl_batch_omega_metrics(want, want.pop("after"))
    assert set(expected) == {
        f"omega/{e}/{k}" for e in BATCH_ESTIMATORS for k in ("pearson", "spearman", "sign_agreement")
    }
    omega = {k: v for k, v in metrics.items() if k.startswith("omega/")}
    assert omega == pytest.approx({**expected, OMEGA_ERROR_METRIC: 0.0}, abs=1e-9)
    assert all(torch.isfinite(torch.tensor(v)) for v in omega.values())
    assert metrics["actor/pg_loss"] == pytest.approx(0.1)

    wg = trainer.actor_rollout_wg
    assert len(wg.calls) == 2  # _compute_old_log_prob's pass and Ω's one extra pass
    ran_as = {"calculate_entropy": True, "compute_loss": False, "temperature": 1.0, "epochs": None}
    assert wg.calls[1] == ran_as  # like _compute_old_log_prob's pass, none of the update's settings
    assert batch.extra_info == wg.update_info and "epochs" in wg.update_info  # as verl's update left them
    torch.testing.assert_close(_queue_entropy(real_queue, batch), want["entropy"])  # π_old's, response-only


@pytest.mark.slow
@pytest.mark.parametrize("where", ["worker", "after_worker"])
def test_a_failing_probe_is_logged_and_training_goes_on(real_queue, queue_config, monkeypatch, where):
    """A worker error in Ω's pass, or one after the pass overwrote the queue's entropy: the hook returns,
    logs omega/error = 1 and a warning naming the exception, and leaves batch and queue as they were."""
    import steerbench.verl.omega as omega
    from steerbench.verl.omega import OMEGA_ERROR_METRIC

    trainer, batch, want = _queued_step(real_queue, queue_config, where)
    if where == "worker":
        real_update = trainer.actor_rollout_wg.update_actor

        def update_then_break(b):
            trainer.actor_rollout_wg.fail = RuntimeError("CUDA error: an illegal memory access")
            return real_update(b)

        trainer.actor_rollout_wg.update_actor = update_then_break
    else:

        def broken(*_a, **_k):
            raise ValueError("estimator broke")

        monkeypatch.setattr(omega, "verl_batch_omega_metrics", broken)
    metrics: dict = {}
    named = "in-training Ω failed at step 2: (RuntimeError: CUDA error|ValueError: estimator broke)"
    with pytest.warns(RuntimeWarning, match=named):
        trainer._update_actor(batch, metrics)
    assert {k: v for k, v in metrics.items() if k.startswith("omega/")} == {OMEGA_ERROR_METRIC: 1.0}
    assert batch.extra_info == trainer.actor_rollout_wg.update_info  # as verl's update left them
    torch.testing.assert_close(_queue_entropy(real_queue, batch), want["entropy"])


def test_a_probe_failure_never_stops_training(monkeypatch):
    """Any failure inside the probe (here: a verl internal that moved) leaves the step to finish: the hook
    returns, logs omega/error = 1 and a RuntimeWarning naming the exception, and restores batch.extra_info."""
    from types import SimpleNamespace

    import steerbench.verl.omega as omega
    from steerbench.verl.compat import VerlCompatError

    def moved(*_names):
        raise VerlCompatError("verl internal verl.workers.utils.padding:response_from_nested is missing")

    monkeypatch.setattr(omega, "require_verl", moved)
    config = OmegaConf.create({"trainer": {"steerbench_omega_every": 2}})
    trainer = SimpleNamespace(global_steps=4, config=config)
    batch = SimpleNamespace(extra_info={"epochs": 1})
    after_update = batch.extra_info
    metrics: dict = {"actor/pg_loss": 0.1}
    with pytest.warns(RuntimeWarning, match="failed at step 4: VerlCompatError: verl internal .* is missing"):
        omega.after_actor_update(trainer, batch, metrics, {})
    assert metrics == {"actor/pg_loss": 0.1, omega.OMEGA_ERROR_METRIC: 1.0}
    assert batch.extra_info is after_update


def test_shimmed_trainer_checks_omega_before_building_workers(monkeypatch):
    """The checks that would otherwise first fail at step K (hours in) run at init, before verl's init."""
    import steerbench.verl.shim as shim

    class Base:
        def init(self):
            raise AssertionError("verl's init ran")

    class Moved(Exception):
        pass

    checked: list = []

    def require_verl(*names):
        checked.extend(names)
        raise Moved

    monkeypatch.setattr(shim, "require_verl", require_verl)
    trainer = shim.make_shimmed_trainer(Base)()
    trainer.config = OmegaConf.create({"trainer": {"steerbench_omega_every": 3}})
    with pytest.raises(Moved):
        trainer.init()
    assert checked == list(shim.OMEGA_INTERNALS)
    trainer.config = OmegaConf.create({"trainer": {"steerbench_omega_every": -1}})
    with pytest.raises(ValueError, match="must be ≥ 0"):
        trainer.init()


def test_the_logged_omega_metric_names_are_documented():
    from pathlib import Path

    from steerbench.verl.omega import OMEGA_ERROR_METRIC

    doc = (Path(__file__).resolve().parents[1] / "docs" / "verl.md").read_text()
    stats = "omega/<estimator>/{pearson,spearman,sign_agreement}"
    for name in (OMEGA_ERROR_METRIC, stats, *BATCH_ESTIMATORS):
        assert f"`{name}`" in doc, name
