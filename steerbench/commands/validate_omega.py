"""``steerbench validate-omega``: how well does Ω (and every other first-order estimator) predict ΔH?

Samples rollout batches from a policy, takes ONE real optimiser step per batch with the method's loss,
re-measures the entropy at the same prefixes and compares with each estimator (steerbench.analysis.omega).
Policy sources (``steerbench.analysis.omega.policies``): the embedded default (warm-started tiny model on
the default task, or ``--task NAME``); ``--run DIR``, an embedded run (``DIR/checkpoints/latest.pt`` +
``DIR/config.yaml``) or a verl run (its ``checkpoints/global_step_<N>/actor/huggingface`` exports and its
training data); or ``--model PATH``, a local Hugging Face causal LM with its own tokenizer and chat
template, prompted from ``--data FILE.parquet`` (verl format) and scored with the verl backend's math reward.

Every flag but ``--out`` and ``--json`` is an alias of a key of the ``omega`` group (``--lr`` is
``omega.lr``, ``--group-size`` ``omega.group_size``), typed and ranged by
``steerbench.schema.OmegaValidationConfig``; raw ``omega.KEY=VALUE`` overrides come after the flags and
win. This module parses, calls ``steerbench.analysis.omega.pipeline.validate_omega`` and prints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from steerbench.schema import OmegaValidationConfig

LIST_FLAGS = ("lrs", "estimators")  # comma-separated on the command line, lists in the config


def flag_overrides(arguments: dict[str, Any]) -> list[str]:
    """The flags set among ``validate_omega_command``'s arguments as overrides, one per key of the omega
    group (each key has the flag of its name), in the schema's order. Text is quoted so that a path
    with any character reads back verbatim."""
    from steerbench.config import hydra_string

    overrides = []
    for name in (f.name for f in dataclasses.fields(OmegaValidationConfig)):
        value = arguments[name]
        if value is None:
            continue
        if name in LIST_FLAGS:
            value = f"[{value}]"
        elif isinstance(value, (str, Path)):
            value = hydra_string(str(value))
        overrides.append(f"omega.{name}={value}")
    return overrides


def flag(name: str, help: str) -> Any:
    """The option ``name``, an alias of the omega key of its name: unset unless given, its default
    shown from the schema (the one place it lives)."""
    key = name.removeprefix("--").replace("-", "_")
    default = next(f for f in dataclasses.fields(OmegaValidationConfig) if f.name == key).default
    shown = "" if default in (None, dataclasses.MISSING) else f" (default {default})"
    return typer.Option(None, name, help=help + shown, show_default=False)


def validate_omega_command(
    overrides: list[str] = typer.Argument(
        None, help="Raw overrides of the omega group, e.g. omega.n_boot=500"
    ),
    run: Path = flag("--run", "Run directory: embedded (checkpoints/latest.pt) or verl (its HF exports)."),
    model: str = flag("--model", "Local Hugging Face causal-LM directory, with its tokenizer."),
    data: Path = flag("--data", "verl-format parquet of prompts + answers (e.g. math500.parquet)."),
    task: str = flag("--task", "Embedded default policy only: its task (add | countdown | ...)."),
    checkpoints: str = flag("--checkpoints", "verl runs: latest, or all (each export over training)."),
    method: str = flag("--method", "Method whose loss takes the step (default: the run's, else grpo)."),
    optimizer: str = flag("--optimizer", "sgd (the theorem's assumption) or adam."),
    lr: float = flag("--lr", "Learning rate of the one measured step."),
    lrs: str = flag("--lrs", "Comma-separated lr sweep, e.g. 1e-4,1e-3,1e-2."),
    estimators: str = flag(
        "--estimators", "Comma-separated, of steer_release,steer_paper,softmax_full,cov,jvp (default: all)."
    ),
    batches: int = flag("--batches", "Rollout batches (batch-level statistics need ≥ 3)."),
    prompts: int = flag("--prompts", "Distinct prompts per batch."),
    group_size: int = flag("--group-size", "Samples per prompt, the GRPO group."),
    max_new_tokens: int = flag("--max-new-tokens", "Response cap (default: the task's; 512 with --data)."),
    max_prompt_tokens: int = flag(
        "--max-prompt-tokens", "--data prompts longer than this (chat-templated) are skipped."
    ),
    row_chunk: int = flag(
        "--row-chunk", "Sequences per forward/backward/JVP pass; 0: the most the budget fits."
    ),
    memory_gb: float = flag("--memory-gb", "One measurement's memory, GB (default: half the free memory)."),
    temperature: float = flag("--temperature", "Sampling temperature; entropies are measured at it."),
    dtype: str = flag("--dtype", "float32, bfloat16 (memory; float32 statistics) or float64 (exact)."),
    device: str = flag("--device", "auto (a GPU when there is one), cpu or cuda."),
    sampler: str = flag(
        "--sampler", "A Hugging Face model's rollouts: generate, vllm (GPU) or auto (vllm when it can)."
    ),
    n_boot: int = flag("--n-boot", "Bootstrap resamples for the 95% CIs."),
    seed: int = flag("--seed", "Seed of prompts, samples, rewards and the bootstrap."),
    rewards: str = flag("--rewards", "task (the verifier) or random (coin flips)."),
    out: Path = typer.Option(None, "--out", help="Write tokens.parquet, summary.json and PNG figures here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Measure how well Ω and the other first-order estimators predict the real one-step entropy change."""
    from steerbench.config import compose_omega

    omega = compose_omega(flag_overrides(locals()) + list(overrides or []))
    validation = validate_with_progress(omega, out)
    reports = [{"step": step, **report} for step, _, report in validation.results]
    if as_json:
        shown = validation.results[0][2] if len(reports) == 1 else {"checkpoints": reports}
        typer.echo(json.dumps(shown, indent=2, sort_keys=True))
    elif len(reports) == 1:
        _print_report(validation.results[0][2], validation.written)
    else:
        _print_over_training(reports, validation.written)


def validate_with_progress(omega: Any, out: Path | None) -> Any:
    """``validate_omega`` under progress bars, its warnings printed (both on stderr)."""
    from steerbench.analysis.omega.pipeline import Reporter, validate_omega

    console = Console(stderr=True)
    with Progress(console=console, transient=True) as bar:

        def track(description: str, total: int | None) -> Any:
            job = bar.add_task(description, total=total)
            return lambda done, total: bar.update(job, completed=done, total=total)

        def warn(message: str) -> None:
            console.print(f"[yellow]warning:[/] {message}")

        return validate_omega(omega, out, Reporter(warn=warn, track=track))


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _print_over_training(over: list[dict[str, Any]], written: list[Path]) -> None:
    names = list(over[0]["estimators"])
    table = Table(
        title=f"Ω validation over training ({over[0]['setup']['method']}): Pearson / sign agreement"
    )
    table.add_column("step")
    for name in names:
        table.add_column(name)
    for row in over:
        table.add_row(
            str(row["step"]),
            *(
                f"{_fmt(row['estimators'][n]['pearson'])} / {_fmt(row['estimators'][n]['sign_agreement'])}"
                for n in names
            ),
        )
    console = Console()
    console.print(table)
    for p in written:
        console.print(f"wrote {p}")


def _print_report(report: dict[str, Any], written: list[Path]) -> None:
    f = _fmt
    s = report["setup"]
    table = Table(
        title=f"Ω validation: {s['method']}, one {s['optimizer']} step, lr={s['lr']:g}, "
        f"{s['tokens']} tokens / {s['sequences']} sequences / {s['batches']} batches"
    )
    for col in (
        "estimator",
        "pearson",
        "spearman",
        "sign agr.",
        "slope",
        "R²",
        "pearson 95% CI",
        "seq. pearson",
    ):
        table.add_column(col)
    for name, e in report["estimators"].items():
        ci = e["ci"].get("pearson") or [None, None]
        table.add_row(
            name + (" (scale-free)" if name in s.get("scale_free", []) else ""),
            f(e["pearson"]),
            f(e["spearman"]),
            f(e["sign_agreement"]),
            f(e["slope"]),
            f(e["r2"]),
            f"[{f(ci[0])}, {f(ci[1])}]",
            f(e["levels"]["sequence"]["pearson"]),
        )
    console = Console()
    console.print(table)
    if "row_chunk" in s:
        console.print(
            f"memory: {s['row_chunk']} sequences per pass; predicted peak {s['predicted_peak_gb']:.2f} GB, "
            f"measured {f(s['measured_peak_gb'])} GB (budget {s['memory_budget_gb']:.2f} GB; --memory-gb)"
        )
    for lr_key, row in (report.get("lr_sweep") or {}).items():
        errs = ", ".join(
            f"{k}={f(v['rel_error_scaled' if k in s.get('scale_free', []) else 'rel_error'])}"
            for k, v in row.items()
        )
        console.print(f"lr={lr_key}: relative first-order error {errs}")
    for p in written[:2]:
        console.print(f"wrote {p}")
    if len(written) > 2:
        console.print(f"wrote {len(written) - 2} figures under {written[0].parent}")


def register(app: typer.Typer) -> None:
    app.command("validate-omega")(validate_omega_command)
