"""``steerbench methods``: the registry as a table (or JSON)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table


def methods_command(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON for machines."),
) -> None:
    """List every entropy intervention: name, kind, knobs with defaults, formula and source."""
    from steerbench.methods import REGISTRY

    rows = [
        {
            "name": spec.name,
            "kind": spec.kind,
            "knobs": spec.knobs(),
            "needs": list(spec.needs),
            "summary": spec.summary,
            "source": spec.source,
        }
        for spec in REGISTRY.values()
    ]
    rows.sort(key=lambda r: r["name"])
    if as_json:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = Table(title="steerbench methods", show_lines=True)
    for col in ("name", "kind", "knobs (defaults)", "formula", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        knobs = ", ".join(f"{k}={v}" for k, v in r["knobs"].items())
        table.add_row(r["name"], r["kind"], knobs, r["summary"], r["source"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("methods")(methods_command)
