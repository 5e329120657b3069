"""The verl command, built the way users run it: compose() → build_verl_launch(cfg, run_dir).

Every method × scenario composes against verl's own config; the clipping is the composed config's;
bad input is a UsageError."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

pytest.importorskip("verl")

from steerbench.config import CONFIG_DIR  # noqa: E402
from steerbench.errors import UsageError  # noqa: E402
from steerbench.methods import REGISTRY  # noqa: E402
from steerbench.verl.launch import PLUGIN_HOOK, RAY_CLI, build_verl_launch  # noqa: E402
from steerbench.verl.tiny import verl_cfg  # noqa: E402

SCENARIOS = sorted(p.stem for p in (CONFIG_DIR / "scenario").glob("*.yaml"))


def launch_of(tmp_path, method="grpo", *overrides, validate=True, **kw):
    return build_verl_launch(
        verl_cfg(tmp_path, method, *overrides, **kw), tmp_path / "run", validate=validate
    )


def clipping(launch) -> tuple[float, float, float]:
    values = dict(o.split("=", 1) for o in launch.overrides if "=" in o)
    return tuple(float(values[f"actor_rollout_ref.actor.clip_ratio_{k}"]) for k in ("low", "high", "c"))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_method_and_scenario_composes_against_verl_with_the_composed_clipping(tmp_path, scenario):
    for method in sorted(REGISTRY):
        cfg = verl_cfg(tmp_path, method, scenario=scenario)
        launch = build_verl_launch(cfg, tmp_path / method)
        assert f"actor_rollout_ref.actor.policy_loss.loss_mode=steerbench_{method}" in launch.overrides
        assert f"+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={PLUGIN_HOOK}" in launch.overrides
        assert "trainer.logger=[console,file]" in launch.overrides
        # C1: the launch carries exactly the clipping compose() resolved, nothing re-derived
        assert clipping(launch) == (cfg.method.clip_low, cfg.method.clip_high, cfg.method.clip_c)


def test_extreme_scenario_reaches_verl_and_a_user_override_still_wins(tmp_path):
    assert clipping(launch_of(tmp_path, "grpo", scenario="extreme", validate=False))[:2] == (0.99, 5.0)
    user = launch_of(tmp_path, "grpo", "method.clip_high=0.4", scenario="extreme", validate=False)
    assert clipping(user)[:2] == (0.99, 0.4)


def test_paper_preset_comes_from_experiments_verl(tmp_path):
    import yaml

    preset = yaml.safe_load((CONFIG_DIR / "verl" / "paper.yaml").read_text())
    launch = launch_of(tmp_path, "steer", "trainer.seed=3", "trainer.steps=7")
    o = launch.overrides
    assert preset["data.train_batch_size"] == 512 and preset["actor_rollout_ref.rollout.n"] == 8
    for key, value in preset.items():
        from steerbench.verl.launch import hydra_value

        assert f"{key}={hydra_value(value)}" in o
    for expected in (
        "trainer.total_training_steps=7",
        "data.seed=3",
        "actor_rollout_ref.rollout.seed=3",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.actor.entropy_coeff=0.0",
        "++actor_rollout_ref.actor.policy_loss.lambda_min=0.8",
        "++actor_rollout_ref.actor.policy_loss.entropy=rollout",
    ):
        assert expected in o
    assert launch.entry_module == "steerbench.verl.main_ppo"  # steer needs the shim (π_old's entropy)
    assert launch.command[:3] == [sys.executable, "-m", "steerbench.verl.main_ppo"]
    assert launch.env["VERL_FILE_LOGGER_PATH"] == str(tmp_path / "run" / "verl_logs" / "attempt-000.jsonl")
    assert launch.env["WANDB_MODE"] == "disabled"
    assert set(launch.to_json()) == {"command", "overrides", "env"}
    json.dumps(launch.to_json())
    none = launch_of(tmp_path, "steer", "verl.preset=none", validate=False)
    assert not any(o.startswith("data.train_batch_size=") for o in none.overrides)


def test_registry_only_methods_use_verls_own_entry_and_attempts_get_their_own_log(tmp_path):
    (tmp_path / "run" / "verl_logs").mkdir(parents=True)
    (tmp_path / "run" / "verl_logs" / "attempt-000.jsonl").write_text("")
    launch = launch_of(tmp_path, "clip_higher", validate=False)
    assert launch.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert launch.env["VERL_FILE_LOGGER_PATH"].endswith("attempt-001.jsonl")


def test_typo_in_a_raw_override_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="rejects"):
        launch_of(tmp_path, "grpo", "verl.overrides=['actor_rollout_ref.actor.clip_ration_low=0.1']")


def test_unknown_policy_loss_field_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        launch_of(tmp_path, "grpo", "verl.overrides=['+actor_rollout_ref.actor.policy_loss.lambda_mni=0.1']")


@pytest.mark.parametrize(
    "bad",
    [["method=stere"], ["scenario=extremely"], ["method.lambda_mni=0.5"], ["method.lambda_min=7.0"]],
)
def test_unknown_method_scenario_or_knob_is_a_usage_error(tmp_path, bad):
    with pytest.raises(UsageError):
        verl_cfg(tmp_path, "steer", *bad)


def test_unknown_preset_and_missing_inputs_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="preset"):
        launch_of(tmp_path, "grpo", "verl.preset=papr", validate=False)
    with pytest.raises(UsageError, match="--model"):
        launch_of(tmp_path, "grpo", "model.hf_path=null", validate=False)
    with pytest.raises(UsageError, match="does not exist"):
        launch_of(tmp_path, "grpo", f"verl.val_files={tmp_path / 'nope.parquet'}", validate=False)


@pytest.mark.parametrize("schedule", ["constant", "stage", "epoch", "entropy_guided"])
def test_every_pos_adv_reweight_schedule_validates_and_runs_through_the_shim(tmp_path, schedule):
    knobs = {"schedule": schedule, "weight": 0.1}
    launch = launch_of(tmp_path, "pos_adv_reweight", "trainer.steps=20", knobs=knobs)
    assert launch.command[1:3] == ["-m", "steerbench.verl.main_ppo"]  # the shimmed trainer updates λ per step
    assert f"++actor_rollout_ref.actor.policy_loss.schedule={schedule}" in launch.overrides
    assert "++actor_rollout_ref.actor.policy_loss.weight=0.1" in launch.overrides
    assert launch.meta["knobs"]["schedule"] == schedule


def test_pos_adv_reweight_defaults_to_the_entropy_guided_schedule_on_verl(tmp_path):
    from omegaconf import OmegaConf

    from steerbench.verl.launch import validate_overrides
    from steerbench.verl.shim import KnobSchedule, scheduled_method

    launch = launch_of(tmp_path, "pos_adv_reweight", validate=False)
    actor = validate_overrides(launch.overrides, method="pos_adv_reweight").actor_rollout_ref.actor
    assert OmegaConf.select(actor, "policy_loss.schedule") == "entropy_guided"
    assert scheduled_method(actor) == "pos_adv_reweight"
    schedule = KnobSchedule.from_actor_config("pos_adv_reweight", actor, total_steps=10)
    assert schedule.cfg.schedule == "entropy_guided" and schedule.cfg.weight == 0.0


def test_ray_launcher_waits_ships_its_paths_and_relays_metrics(tmp_path):
    launch = launch_of(tmp_path, "clip_higher", "verl.launcher=ray")
    assert launch.command[:5] == [*RAY_CLI, "job", "submit"]
    assert "--no-wait" not in launch.command  # the job must finish before its steps are imported
    assert launch.command[launch.command.index("--working-dir") + 1] == launch.job_dir
    runtime_env = json.loads(launch.command[launch.command.index("--runtime-env-json") + 1])
    assert runtime_env["worker_process_setup_hook"] == PLUGIN_HOOK
    job_env = runtime_env["env_vars"]
    assert job_env["VERL_FILE_LOGGER_PATH"] == "attempt-000.jsonl"  # relative: the job's cwd on the cluster
    assert job_env["STEERBENCH_RELAY_METRICS"] == "1"
    assert launch.log_path == str(
        tmp_path / "run" / "verl_logs" / "attempt-000.jsonl"
    )  # relayed lines land here
    assert "reward.custom_reward_function.path=pkg://steerbench.rewards" in launch.overrides
    assert f"hydra.run.dir={tmp_path / 'run' / 'verl_hydra'}" in launch.overrides
    # what remains of this machine's paths: model, data, checkpoints, which must be on storage the cluster shares
    local = sorted(o.split("=")[0] for o in launch.overrides if str(tmp_path) in o)
    assert local == [
        "actor_rollout_ref.model.path",
        "data.train_files",
        "data.val_files",
        "hydra.run.dir",
        "trainer.default_local_dir",
    ]
    assert not any("worker_process_setup_hook" in o for o in launch.overrides)
    # every method goes through the shimmed TaskRunner on Ray: it relays the metrics
    entry = launch.command[launch.command.index("--") + 1 :][:3]
    assert entry == ["python", "-m", "steerbench.verl.main_ppo"]


def test_slurm_launcher_fills_the_sbatch_template_with_this_environments_python(tmp_path):
    launch = launch_of(
        tmp_path,
        "grpo",
        "verl.launcher=slurm",
        "verl.nnodes=2",
        "verl.n_gpus_per_node=8",
        "+verl.slurm.partition=gpu",
        validate=False,
    )
    assert launch.command[0] == "sbatch"
    script = launch.to_json()["script"]
    for needle in (
        "#SBATCH --nodes=2",
        "--gpus-per-node=8",
        "#SBATCH --partition=gpu",
        "ray.scripts.scripts start --head",
        'ray.scripts.scripts start --address "$ip_head"',
        "srun --overlap",
        f"{shlex.quote(sys.executable)} -m verl.trainer.main_ppo",  # not python3 from PATH
        "export VERL_FILE_LOGGER_PATH=",
        'nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")',
    ):
        assert needle in script
    assert "${" not in script.replace("${SLURM_", "").replace("${nodes_array", "").replace(
        "${#ADDR", ""
    ).replace("${ADDR", "")  # every template field was filled
    launch.write_script()
    assert (tmp_path / "run" / "verl_attempt-000.sbatch").read_text() == script


def test_random_reward_refuses_overlapping_train_and_val_sources(tmp_path):
    with pytest.raises(UsageError, match="both train and val"):
        launch_of(
            tmp_path,
            "grpo",
            f"verl.val_files={tmp_path / 'train.parquet'}",
            scenario="random_reward",
            validate=False,
        )
    ok = launch_of(tmp_path, "grpo", scenario="random_reward", validate=False)
    assert "+reward.custom_reward_function.reward_kwargs.random_reward_sources=[math_dapo]" in ok.overrides


def test_omega_every_reaches_verl_through_the_shimmed_trainer(tmp_path):
    # grpo needs no shim by itself: only the in-training Ω measurement asks for steerbench's trainer
    plain = launch_of(tmp_path, "grpo")
    assert not any("steerbench_omega_every" in o for o in plain.overrides)
    assert plain.entry_module == "verl.trainer.main_ppo"
    measured = launch_of(tmp_path, "grpo", "trainer.omega_every=3")  # validated against verl's config
    assert "+trainer.steerbench_omega_every=3" in measured.overrides
    assert measured.entry_module == "steerbench.verl.main_ppo"


def test_the_paper_presets_omega_schedule_reaches_verl(tmp_path):
    """`steerbench grid paper backend=verl …` logs in-training Ω like the embedded paper grid."""
    from steerbench.grid import build_spec

    every = build_spec("paper").overrides["trainer.omega_every"]
    assert every == ["50"]
    launch = launch_of(tmp_path, "steer", f"trainer.omega_every={every[0]}", validate=False)
    assert "+trainer.steerbench_omega_every=50" in launch.overrides
