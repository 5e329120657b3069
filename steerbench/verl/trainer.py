"""``steerbench run --backend verl``: compose, validate and launch one verl run, then import its logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from omegaconf import DictConfig

from steerbench.errors import RunFailed, UsageError
from steerbench.runstore import RunStore
from steerbench.verl.importer import import_verl_logs
from steerbench.verl.launch import build_verl_launch


def print_dry_run(cfg: DictConfig, run_dir: Path, as_json: bool) -> None:
    launch = build_verl_launch(cfg, run_dir)
    typer.echo(json.dumps(launch.to_json(), indent=2) if as_json else " \\\n  ".join(launch.command))


def train_verl(
    cfg: DictConfig,
    store: RunStore,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_warm_start: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run verl to completion (locally, or through a blocking ``ray job submit``), then import its logs.

    The same contract as the local trainer's ``train``, so ``steerbench run`` and every grid launcher
    drive both backends through ``execute.execute``. SLURM is the grid's job (one allocation per cell,
    verl launched locally inside it), so ``verl.launcher=slurm`` is refused here.
    """
    if cfg.verl.launcher == "slurm":
        raise UsageError(
            "verl.launcher=slurm submits an sbatch job and returns; use `steerbench grid --launcher slurm` "
            "(each cell runs verl inside its own allocation), or `steerbench run --backend verl "
            "--launcher slurm --dry-run` to get the sbatch script"
        )
    result = build_verl_launch(cfg, store.path).run(check=False)
    if result.returncode != 0:
        raise RunFailed(f"verl exited with code {result.returncode}; logs in {store.path / 'verl_logs'}")
    import_verl_logs(None, store.path)
    rows = store.read_metrics()
    if on_step:
        for row in rows:
            on_step(row)
    return rows
