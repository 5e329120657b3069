"""``steerbench run``: train one run. Every flag is an alias of a Hydra override; raw overrides work too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from steerbench.errors import UsageError

FLAG_KEYS = {
    "method": "method",
    "scenario": "scenario",
    "task": "task",
    "backend": "backend",
    "steps": "trainer.steps",
    "seed": "trainer.seed",
    "lambda_min": "method.lambda_min",
    "lambda_max": "method.lambda_max",
    "mapping": "method.mapping",
    "model": "model.hf_path",
    "train_data": "verl.train_files",
    "val_data": "verl.val_files",
    "gpus": "verl.n_gpus_per_node",
    "nodes": "verl.nnodes",
    "launcher": "verl.launcher",
}


def flag_overrides(arguments: dict[str, Any]) -> list[str]:
    """The flags set among ``run_command``'s arguments as overrides, in ``FLAG_KEYS`` order. Flags come
    first, so raw KEY=VALUE overrides given after them win."""
    return [f"{key}={arguments[name]}" for name, key in FLAG_KEYS.items() if arguments[name] is not None]


def run_command(
    overrides: list[str] = typer.Argument(
        None, help="Extra Hydra overrides, e.g. trainer.lr=1e-3 method.group=batch"
    ),
    method: str = typer.Option(
        None, "--method", "-m", help="Method name (see `steerbench methods`). Default grpo."
    ),
    lambda_min: float = typer.Option(
        None, "--lambda-min", help="STEER λ_min (weight of the largest |Ω|), in (0, 1]."
    ),
    lambda_max: float = typer.Option(
        None, "--lambda-max", help="STEER λ_max (1.0 exp, 1.2 linear by default)."
    ),
    mapping: str = typer.Option(None, "--mapping", help="STEER weight mapping: exp or linear."),
    scenario: str = typer.Option(
        None, "--scenario", "-s", help="standard | release | extreme | random_reward."
    ),
    task: str = typer.Option(
        None,
        "--task",
        "-t",
        help="Embedded task: add | countdown | countdown_tail | steps; with --model: arith_text | text "
        "(task.data=FILE.parquet).",
    ),
    steps: int = typer.Option(None, "--steps", help="RL steps (rollout batches)."),
    seed: int = typer.Option(None, "--seed", help="Seed; a CPU run with a seed is bit-reproducible."),
    backend: str = typer.Option(None, "--backend", help="local (embedded, CPU; default) | verl (GPUs)."),
    model: str = typer.Option(
        None, "--model", help="Local Hugging Face causal-LM directory instead of the tiny model."
    ),
    train_data: str = typer.Option(
        None, "--train-data", help="verl backend: training parquet (verl format)."
    ),
    val_data: str = typer.Option(None, "--val-data", help="verl backend: validation parquet (verl format)."),
    gpus: int = typer.Option(None, "--gpus", help="verl backend: GPUs per node."),
    nodes: int = typer.Option(None, "--nodes", help="verl backend: nodes."),
    launcher: str = typer.Option(None, "--launcher", help="verl backend: local | ray | slurm."),
    out: Path = typer.Option(
        Path("runs"),
        "--out",
        "-o",
        help="Parent directory; the run lives in OUT/<method>__<scenario>__<task>__seed<k>.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Require an existing run in OUT and continue it (runs resume anyway)."
    ),
    wandb: bool = typer.Option(
        False, "--wandb", help="Also log to Weights & Biases (offline unless WANDB_MODE is set)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON on stdout."),
) -> None:
    """Train one run: GRPO with an entropy intervention, on the embedded CPU testbed by default."""
    from steerbench.config import compose
    from steerbench.execute import run_dir_name

    all_overrides = flag_overrides(locals()) + list(overrides or [])  # each flag is named once, in FLAG_KEYS
    if wandb:
        all_overrides.append("trainer.wandb=true")
    cfg = compose(all_overrides)
    run_dir = out / run_dir_name(cfg)
    if dry_run:
        print_dry_run(cfg, run_dir, as_json)
        return
    if resume and not (run_dir / "config.yaml").exists():
        raise UsageError(f"--resume: no run to resume in {run_dir}")
    check_outputs(cfg, run_dir)
    console = Console(stderr=True)
    console.print(
        f"[bold]steerbench run[/] {cfg.method.name} · {cfg.scenario.name} · {cfg.task.name} · seed {cfg.trainer.seed} → {run_dir}"
    )
    summary = execute_with_progress(
        cfg, run_dir, all_overrides, console, show=sys.stderr.isatty() or not as_json
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    print_summary(summary, run_dir, console)


def print_dry_run(cfg: Any, run_dir: Path, as_json: bool) -> None:
    """``--dry-run``: the resolved config (verl: its launch too) and where the run would live."""
    if cfg.backend == "verl":
        from steerbench.verl.trainer import print_dry_run as print_verl_dry_run

        print_verl_dry_run(cfg, run_dir, as_json)
        return
    from omegaconf import OmegaConf

    if as_json:
        typer.echo(json.dumps({"run_dir": str(run_dir), "config": OmegaConf.to_container(cfg)}, indent=2))
    else:
        typer.echo(f"# run directory: {run_dir}\n{OmegaConf.to_yaml(cfg)}")


def execute_with_progress(
    cfg: Any, run_dir: Path, overrides: list[str], console: Console, show: bool
) -> dict[str, Any]:
    """``execute`` the run under a warm-start bar and an RL-steps bar (entropy, reward, pass@1)."""
    from steerbench.execute import execute

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False, disable=not show) as bar:
        warm = bar.add_task("warm start", total=None, info="", visible=False)
        rl = bar.add_task("RL steps", total=int(cfg.trainer.steps), info="")

        def on_warm_start(done: int, total: int) -> None:
            bar.update(warm, completed=done, total=total, visible=True)

        def on_step(row: dict[str, Any]) -> None:
            info = " ".join(
                f"{label} {row[key]:.3f}"
                for key, label in (("entropy/mean", "H"), ("reward/mean", "R"), ("val/pass@1", "pass@1"))
                if row.get(key) is not None
            )
            bar.update(rl, completed=row["step"], info=info)

        return execute(cfg, run_dir, overrides=overrides, on_step=on_step, on_warm_start=on_warm_start)


def check_outputs(cfg: Any, run_dir: Path) -> None:
    """The run directory and, for the embedded model, the warm-start cache must be writable up front."""
    from steerbench.runstore import ensure_writable

    ensure_writable(run_dir, "--out")
    if cfg.backend == "local" and not cfg.model.hf_path:
        from steerbench.local.trainer import cache_dir

        ensure_writable(cache_dir(cfg), "the warm-start cache (STEERBENCH_CACHE or warm_start.cache_dir)")


def print_summary(summary: dict[str, Any], run_dir: Path, console: Console) -> None:
    table = Table(
        title=f"{summary['method']} · {summary['scenario']} · {summary['task']} · seed {summary['seed']}"
    )
    for col in ("metric", "start", "end"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for key in ("entropy/mean", "reward/mean", "val/pass@1", "val/pass@k", "val/entropy"):
        start, end = summary["initial"].get(key), summary["final"].get(key)
        fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        table.add_row(key, fmt(start), fmt(end))
    console.print(table)
    console.print(f"{summary['steps']} steps in {summary['wall_s']:.1f} s · run stored in [bold]{run_dir}[/]")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
