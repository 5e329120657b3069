"""``steerbench compare DIR... [--out REPORT_DIR]``: runs → summary.csv, report.md, report.html, PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
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
    as_json: bool = typer.Option(False, "--json", help="Print the summary, verdicts and files as JSON."),
) -> None:
    """Compare each method with its matched grpo control (paired over seeds, Holm-corrected) and write a
    report: verdict, resolution, findings, figures, full tables; positive controls and the dose–response
    frontier when the runs hold them."""
    from steerbench.analysis.compare import controls as ctl
    from steerbench.analysis.compare.frontier import best_doses, frontier_table, write_frontier
    from steerbench.analysis.compare.report import verdict_table, write_report
    from steerbench.analysis.compare.runs import finished_only, load_runs

    console = Console(stderr=as_json)
    out = (out or Path(dirs[0]) / "report").resolve()
    ensure_writable(out, "--out")
    with console.status("loading runs..."):
        runs = load_runs(dirs)
    n_runs = runs.frame["run"].nunique()
    with console.status(f"writing report for {n_runs} runs..."):
        result = write_report(runs, out, include_partial=include_partial)
    finished = runs.frame if include_partial else finished_only(runs.frame)[0]
    controls = result["controls"]
    result["files"] = sorted([*result["files"], *write_frontier(finished, out)])
    if as_json:
        payload = {
            "out": str(out),
            "files": result["files"],
            "summary": json.loads(result["summary"].to_json(orient="records")),
            "verdicts": json.loads(result["verdicts"].to_json(orient="records")),
            "findings": result["findings"],
            "left_out": result["left_out"],
            "damaged": result["damaged"],
            "controls": ctl.as_json(controls),
        }
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    verdicts = result["verdicts"]
    if verdicts.empty:
        console.print("no method other than grpo: nothing to compare")
    else:
        shown = verdict_table(verdicts)
        table = Table(
            title=f"steerbench compare: {n_runs} runs, each method against its matched grpo control"
        )
        for column in shown.columns:
            table.add_column(str(column))
        for row in shown.itertuples(index=False):
            table.add_row(*(escape(str(v)) for v in row))
        console.print(table)
    if result["left_out"]:
        console.print(f"[yellow]left out {len(result['left_out'])} unfinished runs[/] (--include-partial)")
    for run, lines in sorted(result["damaged"].items()):
        console.print(f"[yellow]{escape(run)}: {len(lines)} unreadable metrics line(s) skipped[/]")
    for sentence in result["findings"]:
        console.print(f"• {escape(sentence)}")
    for control in controls:
        console.print(f"• {escape(ctl.describe(control))}")
    frontier = frontier_table(finished)
    if not frontier.empty:
        console.print("dose–response frontier (vs matched grpo):\n" + escape(frontier.to_string(index=False)))
    best = best_doses(finished)
    if not best.empty:
        console.print(
            "best doses, chosen on the selection seeds, tested on the fresh ones:\n"
            + escape(best.to_string(index=False))
        )
    console.print(f"report: [bold]{out / 'report.html'}[/] ({len(result['files'])} files)")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
