"""`steerbench run --backend verl` and grids drive verl through execute.execute, like the local backend."""

import json

import pytest
from local_helpers import cli

from steerbench.config import compose
from steerbench.errors import UsageError
from steerbench.execute import execute


def verl_overrides(tmp_path, launcher="local"):
    (tmp_path / "model").mkdir(exist_ok=True)
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    return [
        "backend=verl",
        f"model.hf_path={tmp_path / 'model'}",
        f"verl.train_files={tmp_path / 'train.parquet'}",
        f"verl.val_files={tmp_path / 'val.parquet'}",
        f"verl.launcher={launcher}",
    ]


def test_slurm_launcher_is_the_grids_job_and_is_refused_with_the_alternative(tmp_path):
    with pytest.raises(UsageError, match="grid --launcher slurm"):
        execute(compose(verl_overrides(tmp_path, "slurm")), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing left to refuse the corrected command


def test_dry_run_prints_the_validated_verl_command_for_steer(tmp_path):
    pytest.importorskip("verl", reason="the verl extra is not installed")
    result = cli(
        "run", "--method", "steer", "--lambda-min", "0.5", "--dry-run", "--json", *verl_overrides(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    launch = json.loads(result.stdout)
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=steerbench_steer" in launch["command"]
    assert any(o.endswith("lambda_min=0.5") for o in launch["command"])
    assert launch["env"]["VERL_FILE_LOGGER_PATH"].endswith(".jsonl")


def test_verl_backend_without_data_is_a_usage_error(tmp_path):
    result = cli("run", "--backend", "verl", "--method", "steer", "--out", str(tmp_path))
    assert result.returncode == 2 and "--model" in result.stderr
