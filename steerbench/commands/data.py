"""``steerbench data prepare``: an embedded task as verl-format parquet (train.parquet, val.parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from steerbench.runstore import ensure_writable

data_app = typer.Typer(help="Datasets for the verl backend.", no_args_is_help=True)


@data_app.command("prepare")
def prepare_command(
    task: str = typer.Option(..., "--task", help="Embedded task: add or countdown."),
    out: Path = typer.Option(..., "--out", help="Directory for train.parquet and val.parquet."),
    train_size: int = typer.Option(10000, "--train-size", help="Training rows."),
    val_size: int = typer.Option(500, "--val-size", help="Validation rows."),
    seed: int = typer.Option(0, "--seed", help="Problems are a pure function of task, task args and seed."),
    task_arg: list[str] = typer.Option(
        [], "--task-arg", help="Task parameter KEY=VALUE, repeatable (e.g. --task-arg digits=1)."
    ),
) -> None:
    """Write an embedded task as verl-format parquet, scored by steerbench.rewards."""
    from steerbench.verl.prepare import PrepareSpec, parse_task_args, prepare

    ensure_writable(out, "--out")
    spec = PrepareSpec(task, out, train_size, val_size, seed, parse_task_args(task, task_arg))
    for split, path in prepare(spec).items():
        n = train_size if split == "train" else val_size
        typer.echo(f"{split}: {n} rows -> {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
