"""The shim on verl 0.9.1's real v1 trainer (``PPOTrainerSync``), not a stand-in.

Needs the CPU-installable part of verl's ``verl-core`` extra (TransferQueue, pyzmq, msgspec, cachetools,
fastapi, uvicorn), which ``steerbench[verl]`` pins; without it verl's v1 trainer does not import.
"""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("verl")
pytest.importorskip(
    "transfer_queue", reason="verl's v1 trainer needs the verl-core extra: pip install 'steerbench[verl]'"
)

from steerbench.verl.tiny import tiny_run_inputs  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_run_inputs(tmp_path_factory.mktemp("tiny"))


def verl_config(inputs, method="steer"):
    """verl's config for a run on the tiny model, through compose() → build_verl_launch, as users run it."""
    from steerbench.config import compose
    from steerbench.verl.launch import build_verl_launch, validate_overrides

    cfg = compose(
        [
            "backend=verl",
            f"method={method}",
            f"model.hf_path={inputs['model']}",
            f"verl.train_files={inputs['train']}",
            f"verl.val_files={inputs['val']}",
            "verl.overrides=['data.train_batch_size=4','actor_rollout_ref.actor.ppo_mini_batch_size=4']",
        ]
    )
    launch = build_verl_launch(cfg, inputs["model"].parent / "run", validate=False)
    return validate_overrides(launch.overrides, method=method)


def test_shimmed_trainer_is_verls_sync_trainer_with_its_sync_semantics(inputs, caplog):
    """trainer_base.py branches on trainer_mode == "sync": replay buffer, gen_batch_size, TQ checkpoint state."""
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    import steerbench.verl_plugin  # noqa: F401
    from steerbench.verl.shim import trainer_class_for

    config = verl_config(inputs)
    trainer_cls = trainer_class_for(config)  # what SteerbenchTaskRunner.run hands to verl's TaskRunnerV1.run
    assert config.trainer.v1.trainer_mode == "sync"
    assert get_trainer_cls(config.trainer.v1.trainer_mode) is trainer_cls
    assert issubclass(trainer_cls, PPOTrainerSync) and trainer_cls is not PPOTrainerSync
    assert trainer_class_for(config) is trainer_cls  # idempotent: no shim of a shim

    trainer = trainer_cls(config=config)  # verl's real __init__: replay buffer from trainer_mode
    assert trainer.trainer_mode == "sync"  # so _save_checkpoint / _load_checkpoint skip TransferQueue state
    assert type(trainer.replay_buffer) is ReplayBuffer  # not ReplayBufferAsync
    assert trainer.replay_buffer.gen_batch_size == config.data.train_batch_size == 4
    with caplog.at_level(logging.INFO):
        trainer._init_tokenizer()
        trainer._init_dataloader()  # the real dataloader over the tiny model's tokenizer and the parquet
    assert "gen_batch_size defaulted to 1" not in caplog.text
    assert config.data.get("gen_batch_size", None) in (None, 4)
    assert len(trainer.train_dataloader) == 4  # 16 rows / train_batch_size 4


@pytest.mark.slow
def test_real_main_ppo_runs_the_shimmed_task_runner_on_cpu_up_to_verls_gpu_check(inputs, tmp_path):
    """The whole path users run, on CPU: compose → build_verl_launch → steerbench.verl.main_ppo (pre-flight,
    run_ppo) → SteerbenchTaskRunner in Ray (TransferQueue up, shimmed sync trainer constructed) → trainer.init(),
    where verl's resource pool asks for a GPU. That error is where verl ends on a machine without one."""
    import os
    import subprocess

    from steerbench.config import compose
    from steerbench.verl.launch import build_verl_launch

    extra = [
        "data.train_batch_size=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "trainer.device=cpu",
        "ray_kwargs.ray_init.num_cpus=16",  # logical: TransferQueue's storage actors each take one
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]
    cfg = compose(
        [
            "backend=verl",
            "method=steer",
            f"model.hf_path={inputs['model']}",
            f"verl.train_files={inputs['train']}",
            f"verl.val_files={inputs['val']}",
            "verl.n_gpus_per_node=1",
            "trainer.steps=1",
            "verl.overrides=[" + ",".join(f"'{o}'" for o in extra) + "]",
        ]
    )
    launch = build_verl_launch(cfg, tmp_path / "run")
    out = subprocess.run(
        launch.command, env={**os.environ, **launch.env}, capture_output=True, text=True, timeout=900
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0
    assert "SteerbenchTaskRunner" in log and "'trainer_mode': 'sync'" in log
    assert "Total available GPUs 0 is less than total desired GPUs 1" in log
    # verl's composed config stays with the run (not in an outputs/ folder of the caller's directory)
    assert (tmp_path / "run" / "verl_hydra" / ".hydra" / "config.yaml").is_file()
