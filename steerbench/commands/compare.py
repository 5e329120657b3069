"""``steerbench compare DIR... [--out REPORT_DIR]``: runs → summary.csv, report.md, report.html, PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from steerbench.runstore import ensure_writable


def compare_command(
    dirs: list[Path] = typer.Argument(..., help="Folders holding run stores (searched recursively)."),
    out: Path = typer.Option(
        None, "--out", help="Report folder (default: <first DIR>/report).", show_default=False
    ),
    include_partial: bool = typer.Option(
        False, "--include-partial", help="Also summarise runs that have not finished (running/failed)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary rows and files as JSON."),
) -> None:
    """Summarise runs per method × scenario (mean and 95% CI over seeds) and write a report with figures."""
    from steerbench.analysis.compare import load_runs, write_report

    console = Console(stderr=as_json)
    out = (out or Path(dirs[0]) / "report").resolve()
    ensure_writable(out, "--out")
    with console.status("loading runs..."):
        frame = load_runs(dirs)
    with console.status(f"writing report for {frame['run'].nunique()} runs..."):
        result = write_report(frame, out, include_partial=include_partial)
    summary = result["summary"]
    if as_json:
        rows = json.loads(summary.to_json(orient="records"))
        typer.echo(
            json.dumps(
                {
                    "out": str(out),
                    "files": result["files"],
                    "summary": rows,
                    "findings": result["findings"],
                    "left_out": result["left_out"],
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    table = Table(title=f"steerbench compare: {frame['run'].nunique()} runs")
    variants = bool((summary["variant"] != "").any())
    for col in ("scenario", "method", "seeds", "pass@1", "pass@k", "final H", "p90 |ΔH|", "H halves at"):
        table.add_column(col)
        if col == "method" and variants:
            table.add_column("variant")
    for _, r in summary.iterrows():

        def cell(stat: str, r=r) -> str:
            v = r[f"{stat}_mean"]
            return "n/a" if v != v else f"{v:.3f}"

        table.add_row(
            str(r["scenario"]),
            str(r["method"]),
            *([str(r["variant"])] if variants else []),
            str(r["n_seeds"]),
            *(cell(s) for s in ("final_pass1", "final_passk", "final_entropy", "dH_abs_p90")),
            cell("steps_to_half") if r["steps_to_half_n"] else "never",
        )
    console.print(table)
    if result["left_out"]:
        console.print(f"[yellow]left out {len(result['left_out'])} unfinished runs[/] (--include-partial)")
    for sentence in result["findings"]:
        console.print(f"• {sentence}")
    console.print(f"report: [bold]{out / 'report.html'}[/] ({len(result['files'])} files)")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
