"""``steerbench grid``: method × scenario × seed (× sweeps), validated first, run resumably."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from steerbench.commands.run import FLAG_KEYS, flag_overrides
from steerbench.comparisons import CONTROL
from steerbench.errors import RunFailed, UsageError


def grid_command(
    args: list[str] = typer.Argument(
        None,
        help="Optional grid YAML (path or preset name in experiments/grid/), then KEY=V or KEY=V1,V2 sweeps.",
        show_default=False,
    ),
    methods: str = typer.Option(None, "--methods", help="Comma-separated methods, e.g. grpo,steer."),
    scenarios: str = typer.Option(None, "--scenarios", help="Comma-separated scenarios (default: standard)."),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds (default: 0)."),
    steps: int = typer.Option(None, "--steps", help="trainer.steps for every cell."),
    exclude: str = typer.Option(
        None, "--exclude", help="Comma-separated METHOD/SCENARIO pairs to leave out ('' runs every pair)."
    ),
    name: str = typer.Option(None, "--name", help="Grid folder name (default: the YAML's name, or 'grid')."),
    backend: str = typer.Option(
        None, "--backend", help="local (embedded, CPU; default) | verl (GPUs), every cell."
    ),
    model: str = typer.Option(None, "--model", help="Local Hugging Face causal-LM directory, every cell."),
    train_data: str = typer.Option(
        None, "--train-data", help="verl backend: training parquet (verl format)."
    ),
    val_data: str = typer.Option(None, "--val-data", help="verl backend: validation parquet (verl format)."),
    gpus: int = typer.Option(None, "--gpus", help="verl backend: GPUs per node, per cell."),
    nodes: int = typer.Option(None, "--nodes", help="verl backend: nodes, per cell."),
    launcher: str = typer.Option("local", "--launcher", help="How cells start: local | ray | slurm."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Cells running at once (local pool / Ray / array)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Existing Ray cluster (default: start one)."),
    slurm: list[str] = typer.Option(
        None,
        "--slurm",
        help="submitit option KEY=VALUE (slurm_partition=gpu, timeout_min=600, cluster=local).",
    ),
    out: Path = typer.Option(Path("runs"), "--out", help="Runs root; the grid lives in <out>/<name>/."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and their status; run nothing."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run a grid of runs; finished cells are skipped and partial ones resume from their checkpoint. A grid
    grows in its folder: give it more seeds, methods or scenarios and only the new cells run."""
    from steerbench.grid import build_spec, plan, run_grid

    args = list(args or [])
    # the run flags every cell shares, as overrides; raw KEY=VALUE given after them win
    shared = dict(
        backend=backend, model=model, train_data=train_data, val_data=val_data, gpus=gpus, nodes=nodes
    )
    flags = flag_overrides({**dict.fromkeys(FLAG_KEYS), **shared})
    grid_ref = None
    if args and "=" not in args[0]:
        grid_ref = args.pop(0)
    bad = [a for a in args if "=" not in a]
    if bad:
        raise UsageError(f"unexpected argument {bad[0]!r}: give one grid file, then KEY=VALUE overrides")
    spec = build_spec(
        grid_ref,
        name=name,
        methods=methods,
        scenarios=scenarios,
        seeds=seeds,
        steps=steps,
        exclude=exclude,
        overrides=flags + args,
    )
    grid_dir, cells = plan(spec, out)
    console = Console(stderr=as_json)
    print_design(spec, cells, console)
    if dry_run:
        print_plan(spec.name, grid_dir, cells, as_json, console)
        return
    options = slurm_options(slurm or [])
    todo = sum(c.status() != "done" for c in cells)
    console.print(f"grid [bold]{spec.name}[/]: {len(cells)} cells, {todo} to run, in {grid_dir}")
    results = run_grid(
        spec, out, launcher=launcher, jobs=jobs, ray_address=ray_address, slurm=options, progress=not as_json
    )
    print_results(spec.name, grid_dir, results, as_json, console)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(results)} grid cells failed: {', '.join(r.name for r in failed)}"
        )


def print_design(spec: Any, cells: list[Any], console: Console) -> None:
    """The family and the MDE the design gives, before anything runs (needs the analysis extra)."""
    from steerbench.grid import family

    try:
        from steerbench.analysis.compare.design import plan_lines
    except ImportError:  # scipy absent: the grid still runs; compare will need the extra anyway
        console.print(escape("design: install steerbench[analysis] to see the MDE this grid can resolve"))
        return
    declared = {**spec.design, "family": family(spec, cells)}
    control_seeds = len(spec.method_seeds.get(CONTROL, spec.seeds))
    own = {key: len(seeds) for key, seeds in spec.method_seeds.items() if key != CONTROL}
    for line in plan_lines(declared, len(spec.seeds), control_seeds, own):
        console.print(escape(line), highlight=False)


def slurm_options(items: list[str]) -> dict[str, Any]:
    """``--slurm KEY=VALUE`` items as submitit options (digits as integers)."""
    options: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--slurm {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        options[key] = int(value) if value.isdigit() else value
    return options


def print_plan(grid: str, grid_dir: Path, cells: list[Any], as_json: bool, console: Console) -> None:
    """``--dry-run``: every cell, its overrides and its status."""
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "method": c.method,
            "scenario": c.scenario,
            "seed": c.seed,
            "run_dir": str(c.run_dir),
            "overrides": list(c.overrides),
            "status": c.status(),
        }
        for c in cells
    ]
    if as_json:
        typer.echo(json.dumps({"grid": grid, "dir": str(grid_dir), "cells": rows}, indent=2))
        return
    table = Table(title=f"grid {grid}: {len(cells)} cells in {grid_dir}")
    for col in ("cell", "status", "overrides"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["status"], " ".join(row["overrides"]))
    console.print(table)


def print_results(grid: str, grid_dir: Path, results: list[Any], as_json: bool, console: Console) -> None:
    if as_json:
        cells = [
            {"name": r.name, "status": r.status, "error": r.error, "seconds": round(r.seconds, 3)}
            for r in results
        ]
        typer.echo(json.dumps({"grid": grid, "dir": str(grid_dir), "cells": cells}, indent=2))
        return
    table = Table(title=f"grid {grid}")
    for col in ("cell", "status", "time (s)", "error"):
        table.add_column(col, overflow="fold")
    style = {"done": "green", "skipped": "dim", "failed": "bold red"}
    for r in results:
        error = r.error.splitlines()[0] if r.error else ""
        table.add_row(
            r.name, f"[{style[r.status]}]{r.status}[/]", f"{r.seconds:.1f}" if r.seconds else "", error
        )
    console.print(table)
    console.print(f"compare with: steerbench compare {grid_dir}")


def register(app: typer.Typer) -> None:
    app.command(
        "grid",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
    )(grid_command)
