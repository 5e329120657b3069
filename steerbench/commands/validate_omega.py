"""``steerbench validate-omega``: how well does Ω (and every other first-order estimator) predict ΔH?

Samples rollout batches from a policy, takes ONE real optimiser step per batch with the method's loss,
re-measures the entropy at the same prefixes and compares with each estimator (steerbench.analysis.omega).
Policy sources (``steerbench.analysis.omega.policies``): the embedded default (warm-started tiny model on
the default task, or ``--task NAME``); ``--run DIR``, an embedded run (``DIR/checkpoints/latest.pt`` + ``DIR/config.yaml``) or a
verl run (its ``checkpoints/global_step_<N>/actor/huggingface`` exports and its training data); or
``--model PATH``, a local Hugging Face causal LM with its own tokenizer and chat template, prompted from
``--data FILE.parquet`` (verl format) and scored with the verl backend's math reward. This module only
parses flags and prints; the logic lives in ``steerbench.analysis.omega``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from steerbench.errors import UsageError
from steerbench.runstore import ensure_writable

ESTIMATORS_DEFAULT = "steer_release,steer_paper,softmax_full,cov,jvp"


def _parse_list(text: str, what: str, cast: type = str) -> list[Any]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"--{what} is empty; give a comma-separated list")
    try:
        return [cast(t) for t in items]
    except ValueError as err:
        raise UsageError(f"--{what}={text!r} is not a comma-separated list of numbers: {err}") from None


def _method_from(cfg: Any, method: str | None) -> tuple[str, dict[str, Any]]:
    """The method name and knobs: --method wins (with its defaults); else the run's config (grpo by default)."""
    from steerbench.config import method_knobs
    from steerbench.methods import get_method

    if method:
        get_method(method)  # unknown method → exit 2 before any sampling
        return method, {}
    return str(cfg.method.name), method_knobs(cfg)


def validate_omega_command(
    run: Path | None = typer.Option(
        None,
        "--run",
        help="Run directory: an embedded run (DIR/checkpoints/latest.pt + DIR/config.yaml) or a verl run "
        "(DIR/checkpoints/global_step_<N>/actor/huggingface + its training data).",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Local Hugging Face causal-LM directory (save_pretrained), with its tokenizer."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="verl-format parquet of prompts + ground truths (e.g. ../shared/datasets/math500.parquet).",
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Embedded default policy only: the task it is warm-started on and prompted from "
        "(add | countdown | countdown_tail | steps; default: the config's).",
    ),
    checkpoints: str = typer.Option(
        "latest", "--checkpoints", help="verl runs: latest, or all (one table and figure over training)."
    ),
    method: str | None = typer.Option(
        None, "--method", help="Method whose loss takes the step (default: the run's, else grpo)."
    ),
    optimizer: str = typer.Option(
        "sgd", "--optimizer", help="sgd (the theorem's assumption) or adam (practice)."
    ),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate of the one measured step."),
    lrs: str | None = typer.Option(None, "--lrs", help="Comma-separated lr sweep, e.g. 1e-4,1e-3,1e-2."),
    estimators: str = typer.Option(ESTIMATORS_DEFAULT, "--estimators", help="Comma-separated estimators."),
    batches: int = typer.Option(4, "--batches", help="Rollout batches (batch-level statistics need ≥ 3)."),
    prompts: int = typer.Option(8, "--prompts", help="Distinct prompts per batch."),
    group_size: int = typer.Option(8, "--group-size", help="Samples per prompt (GRPO group)."),
    max_new_tokens: int | None = typer.Option(
        None,
        "--max-new-tokens",
        help="Response length cap (default: the task's; 512 with --data; 16 otherwise).",
    ),
    max_prompt_tokens: int = typer.Option(
        1024,
        "--max-prompt-tokens",
        help="--data prompts longer than this (after the chat template) are skipped.",
    ),
    row_chunk: int = typer.Option(
        0,
        "--row-chunk",
        help="Sequences per forward/backward/JVP pass; 0 = the most that fit in the memory budget.",
    ),
    memory_gb: float = typer.Option(
        None,
        "--memory-gb",
        help="Memory one measurement may use, GB (default: half the free RAM, or the GPU's free memory).",
        show_default=False,
    ),
    temperature: float = typer.Option(
        1.0, "--temperature", help="Sampling temperature; entropies are measured at it."
    ),
    dtype: str = typer.Option(
        "float32",
        "--dtype",
        help="float32 (default), bfloat16 (memory; float32 statistics) or float64 (exact).",
    ),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu or cuda."),
    sampler: str = typer.Option(
        "auto",
        "--sampler",
        help="Rollouts of a Hugging Face model: generate (transformers) or vllm (GPU, when installed); "
        "auto picks vllm on a GPU when it is installed.",
    ),
    n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap resamples for the 95% CIs."),
    seed: int = typer.Option(0, "--seed", help="Seed of prompts, samples, rewards and the bootstrap."),
    rewards: str = typer.Option(
        "task", "--rewards", help="task (the verifier; coin flips if no group has reward variance) or random."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write tokens.parquet, summary.json and PNG figures here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Measure how well Ω and the other first-order estimators predict the real one-step entropy change."""
    import torch
    from rich.progress import Progress

    from steerbench.analysis.omega.measure import check_options
    from steerbench.analysis.omega.policies import (
        HFOptions,
        embedded_subject,
        hf_subject,
        resolve_device,
        resolve_dtype,
        run_subjects,
    )
    from steerbench.analysis.omega.validate import validate_subject, write_outputs
    from steerbench.analysis.omega.vllm_sampling import resolve_sampler

    if out is not None:
        ensure_writable(out, "--out")
    names = _parse_list(estimators, "estimators")
    sweep = _parse_list(lrs, "lrs", float) if lrs else []
    for x in [lr, *sweep]:
        check_options(optimizer, x, names, temperature)
    if run is not None and model is not None:
        raise UsageError("--run and --model are exclusive; pass one policy source")
    if data is not None and run is None and model is None:
        raise UsageError("--data goes with --model PATH (or overrides a verl run's data with --run DIR)")
    if min(batches, prompts, group_size) < 1:
        raise UsageError(
            f"--batches, --prompts and --group-size must be ≥ 1 (got {batches}, {prompts}, {group_size})"
        )
    if (
        n_boot < 0
        or row_chunk < 0
        or max_prompt_tokens < 1
        or (max_new_tokens is not None and max_new_tokens < 1)
    ):
        raise UsageError("--n-boot and --row-chunk must be ≥ 0; --max-new-tokens and --max-prompt-tokens ≥ 1")
    if memory_gb is not None and not memory_gb > 0:
        raise UsageError(f"--memory-gb={memory_gb} must be > 0 (GB one measurement may use)")
    if task is not None and (run is not None or model is not None):
        raise UsageError(
            "--task chooses the embedded default policy's task; a --run or --model brings its own"
        )
    if checkpoints not in ("latest", "all"):
        raise UsageError(f"--checkpoints={checkpoints!r} is unknown; choose latest or all")
    if checkpoints == "all" and run is None:
        raise UsageError("--checkpoints all goes with --run DIR (a verl run's exports over training)")
    if rewards not in ("task", "random"):
        raise UsageError(f"--rewards={rewards!r} is unknown; choose task or random")
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    if model is None and run is None and sampler == "vllm":
        raise UsageError("--sampler vllm samples Hugging Face models: pass --model PATH or a verl --run DIR")
    rollout_sampler = resolve_sampler(sampler, torch_device, torch_dtype)

    console = Console(stderr=True)
    from steerbench.config import compose

    cfg = compose([f"task={task}"] if task is not None else [])  # an unknown task → exit 2
    if method is not None:
        _method_from(cfg, method)  # unknown method → exit 2 before loading anything
    opts = HFOptions(data, max_new_tokens, max_prompt_tokens, rollout_sampler)
    with Progress(console=console, transient=True) as bar:
        if model is not None:
            subjects = [hf_subject(model, opts, torch_dtype, torch_device)]
        elif run is not None:
            subjects = run_subjects(Path(run), opts, torch_dtype, torch_device, checkpoints)
        else:
            job = bar.add_task("warm start (cached after the first time)", total=None)
            subjects = [
                embedded_subject(
                    cfg, torch_device, lambda done, total: bar.update(job, completed=done, total=total)
                )
            ]
        results = []
        for subject in subjects:
            method_name, knobs = _method_from(subject.cfg if subject.cfg is not None else cfg, method)
            label = "" if subject.step is None else f"step {subject.step}: "
            sampling = bar.add_task(f"{label}sampling rollouts", total=batches)
            steps = batches * (1 + len([x for x in sweep if x != lr]))
            measuring = bar.add_task(
                f"{label}one {optimizer} step per batch, {len(names)} estimators", total=steps
            )
            frame, report = validate_subject(
                subject,
                method=method_name,
                knobs=knobs,
                batches=batches,
                prompts=prompts,
                group_size=group_size,
                temperature=temperature,
                coin_flips=rewards == "random",
                generator=torch.Generator().manual_seed(seed),
                device=torch_device,
                row_chunk=row_chunk,
                memory_gb=memory_gb,
                warn=lambda msg: console.print(f"[yellow]warning:[/] {msg}"),
                on_batch=lambda job=sampling: bar.advance(job),
                optimizer=optimizer,
                lr=lr,
                lrs=sweep,
                estimators=names,
                dtype=torch_dtype,
                n_boot=n_boot,
                seed=seed,
                progress=lambda _msg, job=measuring: bar.advance(job),
            )
            results.append((subject.step, frame, report))
    for _, _, report in results:
        _warn_resolution(report, console)
    if len(results) == 1:
        _, frame, report = results[0]
        written = write_outputs(out, frame, report) if out is not None else []
        if as_json:
            typer.echo(json.dumps(report, indent=2, sort_keys=True))
            return
        _print_report(report, written)
        return
    from steerbench.analysis.omega.validate import write_over_training

    over = [{"step": step, **report} for step, _, report in results]
    written = write_over_training(out, results) if out is not None else []
    if as_json:
        typer.echo(json.dumps({"checkpoints": over}, indent=2, sort_keys=True))
        return
    _print_over_training(over, written)


def _warn_resolution(report: dict[str, Any], console: Console) -> None:
    s = report["setup"]
    if s["measured_abs_mean"] < 100 * s["resolution"]:
        console.print(
            f"[yellow]warning:[/] mean |ΔH| = {s['measured_abs_mean']:.2e} is within 100× of the {s['dtype']} "
            f"rounding resolution ({s['resolution']:.2e}); rounding noise degrades every statistic. "
            "Raise --lr or pass --dtype float64."
        )


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
