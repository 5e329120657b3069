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
    from steerbench.clipping import CLIP_KNOBS
    from steerbench.methods import REGISTRY

    rows = [
        {
            "name": spec.name,
            "kind": spec.kind,
            "knobs": {k: v for k, v in spec.knobs().items() if k not in CLIP_KNOBS},
            "own_clipping": {k: spec.knobs()[k] for k in spec.own_clipping},
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
