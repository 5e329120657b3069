"""The verl command composer: every method × scenario composes against verl's own config; bad input is a UsageError."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("verl")

from steerbench.errors import UsageError  # noqa: E402
from steerbench.methods import REGISTRY  # noqa: E402
from steerbench.verl.launch import PLUGIN_HOOK, RAY_CLI, SCENARIOS, build_verl_launch  # noqa: E402

BASE = {"model_path": "/models/tiny", "train_files": "train.parquet", "val_files": "val.parquet"}


def cfg(method, scenario="standard", knobs=None, **extra):
    return {
        **BASE,
        "method": method,
        "knobs": dict(knobs or {}),
        "scenario": scenario,
        "train_data_sources": ["math_dapo"],
        **extra,
    }


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_method_and_scenario_composes_against_verl_and_converts(tmp_path, scenario):
    for method in sorted(REGISTRY):
        launch = build_verl_launch(cfg(method, scenario, out=str(tmp_path / method)))
        assert f"actor_rollout_ref.actor.policy_loss.loss_mode=steerbench_{method}" in launch.overrides
        assert f"+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={PLUGIN_HOOK}" in launch.overrides
        assert "trainer.logger=[console,file]" in launch.overrides
        if scenario == "extreme":
            assert "actor_rollout_ref.actor.clip_ratio_low=0.99" in launch.overrides
            assert "actor_rollout_ref.actor.clip_ratio_high=5.0" in launch.overrides


def test_paper_preset_mirrors_the_steer_release(tmp_path):
    launch = build_verl_launch(cfg("steer", out=str(tmp_path / "r"), seed=3))
    o = launch.overrides
    for expected in (
        "data.train_batch_size=512",
        "actor_rollout_ref.rollout.n=8",
        "actor_rollout_ref.actor.ppo_mini_batch_size=32",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.actor.optim.lr=1e-06",
        "actor_rollout_ref.actor.clip_ratio_low=0.2",
        "actor_rollout_ref.actor.clip_ratio_high=0.28",
        "actor_rollout_ref.actor.clip_ratio_c=10.0",
        "data.max_response_length=3072",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.actor.entropy_coeff=0.0",
        "actor_rollout_ref.actor.calculate_entropy=true",
        "++actor_rollout_ref.actor.policy_loss.lambda_min=0.8",
    ):
        assert expected in o
    assert launch.entry_module == "steerbench.verl.main_ppo"  # steer needs the entropy shim
    assert launch.command[1:3] == ["-m", "steerbench.verl.main_ppo"]
    assert launch.env["VERL_FILE_LOGGER_PATH"].endswith("verl_logs/attempt-000.jsonl")
    assert launch.env["WANDB_MODE"] == "disabled"
    assert set(launch.to_json()) == {"command", "overrides", "env"}
    json.dumps(launch.to_json())


def test_registry_only_methods_use_verls_own_entry_and_attempts_get_their_own_log(tmp_path):
    out = tmp_path / "run"
    (out / "verl_logs").mkdir(parents=True)
    (out / "verl_logs" / "attempt-000.jsonl").write_text("")
    launch = build_verl_launch(cfg("clip_higher", out=str(out)), validate=False)
    assert launch.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert launch.env["VERL_FILE_LOGGER_PATH"].endswith("attempt-001.jsonl")


def test_typo_in_a_raw_override_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="rejects"):
        build_verl_launch(
            cfg("grpo", out=str(tmp_path), overrides=["actor_rollout_ref.actor.clip_ration_low=0.1"])
        )


def test_unknown_policy_loss_field_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        build_verl_launch(
            cfg("grpo", out=str(tmp_path), overrides=["+actor_rollout_ref.actor.policy_loss.lambda_mni=0.1"])
        )


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "stere"},
        {"scenario": "extremely"},
        {"knobs": {"lambda_mni": 0.5}},
        {"knobs": {"lambda_min": 7.0}},
    ],
)
def test_unknown_method_scenario_or_knob_is_a_usage_error(tmp_path, bad):
    c = {**cfg("steer", out=str(tmp_path)), **bad}
    with pytest.raises(UsageError):
        build_verl_launch(c, validate=False)


@pytest.mark.parametrize("schedule", ["constant", "stage", "epoch", "entropy_guided"])
def test_every_pos_adv_reweight_schedule_validates_and_runs_through_the_shim(tmp_path, schedule):
    knobs = {"schedule": schedule, "weight": 0.1}
    launch = build_verl_launch(cfg("pos_adv_reweight", knobs=knobs, out=str(tmp_path), steps=20))
    assert launch.command[1:3] == ["-m", "steerbench.verl.main_ppo"]  # the shimmed trainer updates λ per step
    assert f"++actor_rollout_ref.actor.policy_loss.schedule={schedule}" in launch.overrides
    assert "++actor_rollout_ref.actor.policy_loss.weight=0.1" in launch.overrides
    assert launch.meta["knobs"]["schedule"] == schedule


def test_pos_adv_reweight_defaults_to_the_entropy_guided_schedule_on_verl(tmp_path):
    from omegaconf import OmegaConf

    from steerbench.verl.launch import validate_overrides
    from steerbench.verl.shim import KnobSchedule, scheduled_method

    launch = build_verl_launch(cfg("pos_adv_reweight", out=str(tmp_path)), validate=False)
    actor = validate_overrides(launch.overrides, method="pos_adv_reweight").actor_rollout_ref.actor
    assert OmegaConf.select(actor, "policy_loss.schedule") == "entropy_guided"
    assert scheduled_method(actor) == "pos_adv_reweight"
    schedule = KnobSchedule.from_actor_config("pos_adv_reweight", actor, total_steps=10)
    assert schedule.cfg.schedule == "entropy_guided" and schedule.cfg.weight == 0.0


def test_ray_launcher_waits_ships_its_paths_and_relays_metrics(tmp_path):
    launch = build_verl_launch(cfg("clip_higher", out=str(tmp_path)), launcher="ray")
    assert launch.command[:5] == [*RAY_CLI, "job", "submit"]
    assert "--no-wait" not in launch.command  # the job must finish before its steps are imported
    assert launch.command[launch.command.index("--working-dir") + 1] == launch.job_dir
    runtime_env = json.loads(launch.command[launch.command.index("--runtime-env-json") + 1])
    assert runtime_env["worker_process_setup_hook"] == PLUGIN_HOOK
    job_env = runtime_env["env_vars"]
    assert job_env["VERL_FILE_LOGGER_PATH"] == "attempt-000.jsonl"  # relative: the job's cwd on the cluster
    assert job_env["STEERBENCH_RELAY_METRICS"] == "1"
    assert launch.log_path == str(tmp_path / "verl_logs" / "attempt-000.jsonl")  # where relayed lines land
    assert "reward.custom_reward_function.path=pkg://steerbench.verl.reward" in launch.overrides
    # what remains of this machine's paths: data and checkpoints, which must be on storage the cluster shares
    local = sorted(o.split("=")[0] for o in launch.overrides if str(tmp_path) in o)
    assert local == ["trainer.default_local_dir"]
    assert not any("worker_process_setup_hook" in o for o in launch.overrides)
    # every method goes through the shimmed TaskRunner on Ray: it relays the metrics
    assert launch.command[launch.command.index("--") + 1 :][:3] == [
        "python",
        "-m",
        "steerbench.verl.main_ppo",
    ]


def test_slurm_launcher_writes_a_ray_on_slurm_script(tmp_path):
    launch = build_verl_launch(
        cfg("grpo", out=str(tmp_path), nnodes=2, n_gpus_per_node=8), launcher="slurm", validate=False
    )
    assert launch.command[0] == "sbatch"
    script = launch.to_json()["script"]
    for needle in (
        "#SBATCH --nodes=2",
        "--gpus-per-node=8",
        "ray start --head",
        'ray start --address "$ip_head"',
        "srun --overlap",
        "verl.trainer.main_ppo",
        "export VERL_FILE_LOGGER_PATH=",
    ):
        assert needle in script
    import shlex
    import sys

    assert f"{shlex.quote(sys.executable)} -m verl.trainer.main_ppo" in script  # this environment's python
    launch.write_script()
    assert (tmp_path / "verl_attempt-000.sbatch").read_text() == script


def test_random_reward_refuses_overlapping_train_and_val_sources(tmp_path):
    import pandas as pd

    f = tmp_path / "d.parquet"
    pd.DataFrame({"data_source": ["math_dapo"]}).to_parquet(f)
    with pytest.raises(UsageError, match="both train and val"):
        build_verl_launch(
            {
                **BASE,
                "method": "grpo",
                "scenario": "random_reward",
                "train_files": str(f),
                "val_files": str(f),
                "out": str(tmp_path),
            },
            validate=False,
        )
