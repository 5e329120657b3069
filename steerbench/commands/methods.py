"""``steerbench methods``: the registry as a table (or JSON)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table


def methods_command(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON for machines."),
) -> None:
    """List every entropy intervention: name, kind, knobs with defaults, clipping, formula and source.

    Clipping (clip_low, clip_high, clip_c) comes from the run's scenario for every method, except the
    knobs a method owns because they are its mechanism (clip_higher's ε_high, clip_cov's recipe).
    """
    from steerbench.methods import catalog

    rows = catalog()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = Table(title="steerbench methods", show_lines=True)
    for col in ("name", "kind", "knobs (defaults)", "clipping", "formula", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        knobs = ", ".join(f"{k}={v}" for k, v in r["knobs"].items())
        own = ", ".join(f"{k}={v}" for k, v in r["own_clipping"].items())
        clipping = f"own: {own}; rest: scenario" if own else "scenario"
        table.add_row(r["name"], r["kind"], knobs, clipping, r["summary"], r["source"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("methods")(methods_command)
