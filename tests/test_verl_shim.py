"""The shim: steerbench losses get the actor's entropy and ref log-probs through verl's real ppo_loss,
and the setup hook registers the losses inside a real Ray worker process."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("verl")

from steerbench.methods import PolicyBatch, compute_policy_loss  # noqa: E402
from steerbench.verl.tiny import engine_micro_batch as engine_batch  # noqa: E402
from steerbench.verl.tiny import verl_cfg, verl_config, worker_actor_config  # noqa: E402

_ROOT = Path(tempfile.mkdtemp(prefix="steerbench-verl-shim-"))


def actor_config(method: str, **knobs):
    return worker_actor_config(_ROOT, method, knobs)


@pytest.mark.parametrize("method", ["steer", "kl"])
def test_extra_inputs_reach_steerbench_losses_through_verls_real_ppo_loss(method):
    import steerbench.verl_plugin  # noqa: F401
    from steerbench.verl.shim import extra_inputs_ppo_loss
    from steerbench.verl.tiny import padded_reference_loss

    config = actor_config(method)
    data, model_output = engine_batch()
    loss, metrics = extra_inputs_ppo_loss(config, model_output, data)
    expected = padded_reference_loss(method, config, data, model_output)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)  # entropy_coeff=0, kl_loss_coef=0
    assert "actor/pg_loss" in metrics


@pytest.mark.parametrize(
    ("method", "knobs", "trains_through_entropy"),
    [("steer", {"entropy": "current"}, False), ("grpo", {}, False), ("entropy_bonus", {}, True)],
)
def test_the_actors_entropy_leaves_the_backward_graph_unless_the_method_trains_through_it(
    method, knobs, trains_through_entropy
):
    """verl's ppo_loss subtracts 0·entropy: without the detach the full-vocab entropy stays in the graph."""
    import steerbench.verl_plugin  # noqa: F401
    from steerbench.verl.shim import extra_inputs_ppo_loss

    data, model_output = engine_batch()
    source = torch.ones_like(model_output["entropy"]).requires_grad_(True)  # stands in for the logits
    model_output["entropy"] = model_output["entropy"] * source
    loss, _ = extra_inputs_ppo_loss(actor_config(method, **knobs), model_output, data)
    loss.backward()
    if trains_through_entropy:
        assert source.grad is not None and source.grad.abs().sum() > 0
    else:
        assert source.grad is None  # not even a zero gradient: the entropy is not in the graph


def test_steer_reads_pi_old_entropy_from_the_batch_by_default_and_says_so(tmp_path):
    import steerbench.verl_plugin  # noqa: F401
    from steerbench.verl.launch import build_verl_launch
    from steerbench.verl.shim import extra_inputs_ppo_loss

    config = actor_config("steer")
    assert config.policy_loss.entropy == "rollout"
    data, model_output = engine_batch()
    loss, metrics = extra_inputs_ppo_loss(config, dict(model_output), data)
    model_output["entropy"] = model_output["entropy"] * 3  # the current policy's entropy does not matter
    loss_again, _ = extra_inputs_ppo_loss(config, model_output, data)
    torch.testing.assert_close(loss, loss_again)
    mask = data["response_mask"].float()
    expected = float((data["entropy"] * mask).sum() / mask.sum())
    assert metrics["steer/entropy_rollout_mean"].values == [pytest.approx(expected, rel=1e-6)]
    # so the update's forward computes no entropy at all; entropy=current turns it back on
    rollout = build_verl_launch(verl_cfg(tmp_path, "steer"), tmp_path / "r", validate=False).overrides
    current = build_verl_launch(
        verl_cfg(tmp_path, "steer", knobs={"entropy": "current"}), tmp_path / "r", validate=False
    ).overrides
    assert "actor_rollout_ref.actor.calculate_entropy=false" in rollout
    assert "actor_rollout_ref.actor.calculate_entropy=true" in current


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


# ---- per-step knob schedules (pos_adv_reweight's λ) -------------------------------------------------

SCHEDULES = ["constant", "stage", "epoch", "entropy_guided"]


@pytest.fixture
def cpu_internals(monkeypatch):
    """``verl.workers.engine_workers`` and ``verl.trainer.ppo.v1`` import only with verl's GPU-side extras
    (uvicorn, cachetools, transfer_queue), so the import-time pin checks are stubbed here; the source-level
    hook check runs for real in test_step_hook_check_reads_verls_real_fit_loop."""
    import steerbench.verl.shim as shim

    monkeypatch.setattr(shim, "require_verl", lambda *a, **k: None)
    monkeypatch.setattr(shim, "require_step_hook", lambda: None)
    monkeypatch.setattr(shim, "install_advantage_shim", lambda: None)  # wraps verl.trainer.ppo.v1.utils


def posadv_actor(schedule: str, **knobs):
    """verl's composed actor section (DictConfig) for pos_adv_reweight with ``schedule``."""
    return verl_config(
        _ROOT, "pos_adv_reweight", knobs={"schedule": schedule, **knobs}
    ).actor_rollout_ref.actor


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_knob_schedule_reproduces_spec_schedule_step_by_step(schedule):
    from steerbench.methods import REGISTRY
    from steerbench.verl.shim import KnobSchedule

    spec = REGISTRY["pos_adv_reweight"]
    total = 12
    # entropies straddling δ=0.2 so the entropy-guided λ goes up and down
    entropies = [0.5, 0.4, 0.1, 0.3, 0.05, 0.25, 0.15, 0.6, 0.19, 0.21, 0.8, 0.1]
    knobs = {"schedule": schedule, "weight": 0.3, "num_epochs": 3}
    schedule_ = KnobSchedule("pos_adv_reweight", knobs, total_steps=total)
    ref = spec.make_config(**knobs)
    expected, got = [ref.weight], [schedule_.cfg.weight]
    for verl_step, entropy in enumerate(entropies, start=1):  # verl's global_steps are 1-based
        ref = spec.schedule(ref, {"step": verl_step - 1, "total_steps": total, "entropy": entropy})
        changed = schedule_.after_step(verl_step, entropy)
        assert changed == ({"weight": ref.weight} if ref.weight != expected[-1] else {})
        expected.append(ref.weight)
        got.append(schedule_.cfg.weight)
    assert got == expected
    assert [schedule_.history[k]["weight"] for k in range(1, total + 2)] == expected
    if schedule != "constant":
        assert len(set(expected)) > 1  # the schedule does move λ here


def test_knob_schedule_from_verls_actor_config_and_the_pushed_loss_uses_the_new_weight(cpu_internals):
    """The loss_fn sent with set_loss_fn after a step runs verl's ppo_loss with the scheduled λ."""
    import steerbench.verl_plugin  # noqa: F401
    from steerbench.verl.shim import KnobSchedule, make_worker_loss_fn, scheduled_method

    actor = posadv_actor("entropy_guided", weight=0.5)
    assert scheduled_method(actor) == "pos_adv_reweight"
    assert scheduled_method(worker_actor_config_omega("steer")) is None
    schedule = KnobSchedule.from_actor_config("pos_adv_reweight", actor, total_steps=10)
    assert schedule.cfg.weight == 0.5 and schedule.cfg.entropy_target == 0.2
    assert schedule.after_step(1, 0.9) == {"weight": 0.55}
    loss_fn = make_worker_loss_fn(actor, schedule.scheduled_knobs())
    assert loss_fn.keywords["config"].policy_loss.weight == 0.55
    assert actor.policy_loss.weight == 0.5  # verl's own config is left as it was
    data, model_output = engine_batch()
    loss, metrics = loss_fn(model_output=model_output, data=data)
    assert "posadv/weight" in metrics  # (a verl Metric); the loss value below pins λ=0.55
    from verl.workers.utils.padding import no_padding_2_padding

    config = loss_fn.keywords["config"]
    batch = PolicyBatch(
        log_prob=no_padding_2_padding(model_output["log_probs"], data),
        old_log_prob=data["old_log_probs"],
        advantages=data["advantages"],
        response_mask=data["response_mask"].bool(),
    )
    expected, _ = compute_policy_loss(
        "pos_adv_reweight",
        batch,
        clip_low=config.clip_ratio_low,
        clip_high=config.clip_ratio_high,
        clip_c=config.clip_ratio_c,
        weight=0.55,
    )
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)


def worker_actor_config_omega(method: str):
    return verl_config(_ROOT, method).actor_rollout_ref.actor


class _RecordingWorkerGroup:
    def __init__(self):
        self.loss_fns = []

    def set_loss_fn(self, loss_fn):
        self.loss_fns.append(loss_fn)


def _stand_in_trainer_base(actor, total_steps: int, entropies: list[float | None], out_dir: str):
    """Stands in for verl's v1 PPOTrainer (not importable on CPU: needs transfer_queue, cachetools, uvicorn):
    same ``init()`` / ``step(metrics, timing_raw)`` / ``global_steps`` / ``total_training_steps`` contract."""
    from omegaconf import OmegaConf

    class Base:
        def __init__(self, global_steps: int = 0):
            self.config = OmegaConf.create(
                {
                    "actor_rollout_ref": {"actor": OmegaConf.to_container(actor)},
                    "trainer": {"default_local_dir": out_dir},
                }
            )
            self._start = global_steps

        def init(self):
            self.actor_rollout_wg = _RecordingWorkerGroup()
            self.total_training_steps = total_steps
            self.global_steps = self._start  # _load_checkpoint

        def step(self, metrics, timing_raw):
            entropy = entropies[self.global_steps - 1]
            if entropy is not None:
                metrics["actor/entropy"] = entropy
            return "batch"

        def fit(self):  # verl's loop, reduced to the calls the hook relies on
            self.global_steps += 1
            while self.global_steps <= self.total_training_steps:
                metrics: dict = {}
                assert self.step(metrics, {}) == "batch"
                self.logged.append(metrics)
                self.global_steps += 1

    return Base


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_shimmed_trainer_pushes_each_steps_lambda_through_set_loss_fn(tmp_path, schedule, cpu_internals):
    from steerbench.methods import REGISTRY
    from steerbench.verl.shim import SCHEDULE_FILE, make_shimmed_trainer

    total = 8
    entropies = [0.5, 0.1, 0.3, 0.05, 0.25, 0.6, 0.1, 0.1]
    actor = posadv_actor(schedule, weight=0.2, num_epochs=2)
    trainer = make_shimmed_trainer(_stand_in_trainer_base(actor, total, entropies, str(tmp_path)))()
    trainer.logged = []
    trainer.init()
    trainer.fit()

    spec = REGISTRY["pos_adv_reweight"]
    ref = spec.make_config(schedule=schedule, weight=0.2, num_epochs=2)
    lambdas = [ref.weight]
    for s, h in enumerate(entropies):
        ref = spec.schedule(ref, {"step": s, "total_steps": total, "entropy": h})
        lambdas.append(ref.weight)
    pushed = [fn.keywords["config"].policy_loss.weight for fn in trainer.actor_rollout_wg.loss_fns]
    # one set_loss_fn at init, then one after every step whose λ changed
    dedup = [lambdas[0]] + [w for prev, w in zip(lambdas, lambdas[1:], strict=False) if w != prev]
    assert pushed == dedup
    assert [m["steerbench/next_weight"] for m in trainer.logged] == lambdas[1:]
    import json

    saved = json.loads((tmp_path / SCHEDULE_FILE).read_text())["knobs_by_step"]
    assert [saved[str(k)]["weight"] for k in range(1, total + 2)] == lambdas

    # resume after a checkpoint at step 5: the first loss_fn carries λ of step 6
    resumed = make_shimmed_trainer(_stand_in_trainer_base(actor, total, entropies, str(tmp_path)))(
        global_steps=5
    )
    resumed.init()
    assert resumed.actor_rollout_wg.loss_fns[0].keywords["config"].policy_loss.weight == lambdas[5]


def test_entropy_guided_schedule_fails_loudly_without_entropy_or_history(tmp_path):
    from steerbench.verl.shim import KnobSchedule

    schedule = KnobSchedule("pos_adv_reweight", {"schedule": "entropy_guided"}, total_steps=4)
    with pytest.raises(RuntimeError, match="actor/entropy"):
        schedule.after_step(1, None)
    with pytest.raises(RuntimeError, match="resuming"):
        KnobSchedule("pos_adv_reweight", {"schedule": "entropy_guided"}, 4).resume(2, tmp_path / "none.json")
    stage = KnobSchedule("pos_adv_reweight", {"schedule": "stage"}, total_steps=4)
    stage.resume(3, None)  # step-only schedules replay without history
    assert stage.cfg.weight == 1.0


def test_step_hook_check_reads_verls_real_fit_loop():
    """verl 0.9.1's trainer_base.py has the hook; edits that move it are caught (source checked, not imported)."""
    from pathlib import Path

    import verl

    from steerbench.verl.shim import step_hook_problems

    src = (Path(verl.__file__).parent / "trainer/ppo/v1/trainer_base.py").read_text()
    assert step_hook_problems(src) == []
    assert (
        "step(self, metrics, timing_raw)"
        in step_hook_problems(
            src.replace("def step(self, metrics: dict, timing_raw: dict)", "def step(self, batch)")
        )[0]
    )
    assert (
        "self.step(metrics"
        in step_hook_problems(
            src.replace("batch = self.step(metrics, self.timing_raw)", "batch = self.train_step(metrics)")
        )[0]
    )
    assert "actor/entropy" in step_hook_problems(src.replace('"actor/entropy"', '"actor/entropy_mean"'))[0]
