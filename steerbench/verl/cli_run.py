"""``steerbench run --backend verl``: compose, validate and launch one verl run, then import its logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from omegaconf import DictConfig, OmegaConf

from steerbench.errors import RunFailed, UsageError


def verl_launch_config(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    v = cfg.verl
    if not cfg.model.hf_path:
        raise UsageError("--backend verl needs --model PATH (a Hugging Face causal-LM directory)")
    if not v.train_files or not v.val_files:
        raise UsageError("--backend verl needs --train-data FILE and --val-data FILE (verl-format parquet)")
    for key in ("train_files", "val_files"):
        if not Path(v[key]).exists():
            raise UsageError(f"{key.replace('_files', ' data')} file {v[key]} does not exist")
    return {
        "method": OmegaConf.to_container(cfg.method, resolve=True),
        "scenario": OmegaConf.to_container(cfg.scenario, resolve=True),
        "model_path": cfg.model.hf_path,
        "train_files": v.train_files,
        "val_files": v.val_files,
        "out": run_dir,
        "n_gpus_per_node": v.n_gpus_per_node,
        "nnodes": v.nnodes,
        "steps": cfg.trainer.steps,
        "seed": cfg.trainer.seed,
        "preset": v.preset,
        "wandb": cfg.trainer.wandb,
        "overrides": list(v.overrides),
        "launcher": v.launcher,
        "ray_address": v.ray_address,
    }


def launch_verl(cfg: DictConfig, overrides: list[str], *, out: Path, dry_run: bool, as_json: bool) -> None:
    from steerbench.runner import run_dir_name
    from steerbench.runstore import RunStore
    from steerbench.verl.importer import import_verl_logs
    from steerbench.verl.launch import build_verl_launch

    run_dir = out / run_dir_name(cfg)
    launch = build_verl_launch(verl_launch_config(cfg, run_dir), launcher=cfg.verl.launcher)
    if dry_run:
        typer.echo(json.dumps(launch.to_json(), indent=2) if as_json else " \\\n  ".join(launch.command))
        return
    store = RunStore(run_dir)
    store.prepare(OmegaConf.to_container(cfg, resolve=True), overrides)  # type: ignore[arg-type]
    store.write_meta("running", backend="verl")
    result = launch.run(check=False)
    if result.returncode != 0:
        store.write_meta("failed", error=f"verl exited with code {result.returncode}")
        raise RunFailed(f"verl exited with code {result.returncode}; logs in {run_dir / 'verl_logs'}")
    steps = import_verl_logs(None, run_dir)
    if cfg.verl.launcher == "local":
        store.write_meta("done", steps=steps)
    typer.echo(f"verl run imported: {steps} steps in {run_dir}")
