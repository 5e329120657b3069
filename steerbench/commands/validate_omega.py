"""``steerbench validate-omega``: how well does Ω (and every other first-order estimator) predict ΔH?

Samples rollout batches from a policy, takes ONE real optimiser step per batch with the method's loss,
re-measures the entropy at the same prefixes and compares with each estimator (steerbench.analysis).
Policy sources: the embedded default (warm-started tiny model on the default task), a run directory
(``--run DIR``: ``DIR/checkpoints/latest/model.pt`` + ``DIR/config.yaml``) or a local Hugging Face causal
LM (``--model PATH``; tokenizer-free: random prompt ids and coin-flip rewards).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import omegaconf
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


def _default_config() -> Any:
    """The composed default run config (experiments/config.yaml, as ``steerbench run`` sees it)."""
    from steerbench.config import compose

    return compose()


def _embedded_policy(cfg: Any, console: Console) -> tuple[Any, Any]:
    """The trainer's own warm-started policy (same cache, so a grid's warm start is reused)."""
    from rich.progress import Progress

    from steerbench.local.trainer import build_policy, build_task

    task = build_task(cfg)
    with Progress(console=console, transient=True) as bar:
        job = bar.add_task("warm start (cached after the first time)", total=None)
        model = build_policy(
            cfg, task, progress=lambda done, total: bar.update(job, completed=done, total=total)
        )
    return model.eval(), task


def _run_policy(run_dir: Path) -> tuple[Any, Any, Any]:
    """The run's latest checkpoint: ``checkpoints/latest.pt`` (the trainer's) or ``checkpoints/latest/model.pt``."""
    import torch
    from omegaconf import OmegaConf

    from steerbench.local.model import ModelConfig, TinyPolicy
    from steerbench.local.tasks import TOKENIZER
    from steerbench.local.trainer import build_task

    candidates = [run_dir / "checkpoints" / "latest.pt", run_dir / "checkpoints" / "latest" / "model.pt"]
    weights = next((c for c in candidates if c.is_file()), None)
    if weights is None:
        raise UsageError(
            f"--run {str(run_dir)!r} has no checkpoint (looked for {', '.join(str(c) for c in candidates)}); "
            "pass a run directory written by `steerbench run` after its first checkpoint"
        )
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"--run {str(run_dir)!r} has no config.yaml; it is not a steerbench run directory")
    try:
        cfg = OmegaConf.load(cfg_path)
    except Exception as err:  # noqa: BLE001  any YAML/OmegaConf error is a bad run directory
        raise UsageError(f"cannot read {str(cfg_path)!r}: {err}") from None
    if cfg.model.get("hf_path"):
        from steerbench.local.hf import load_hf_policy

        model: Any = load_hf_policy(cfg.model.hf_path)
    else:
        model = TinyPolicy(
            ModelConfig(
                vocab_size=TOKENIZER.vocab_size,
                n_layer=cfg.model.n_layer,
                n_head=cfg.model.n_head,
                d_model=cfg.model.d_model,
                max_seq_len=cfg.model.max_seq_len,
            )
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001  unpickling or shape errors: the checkpoint does not fit
        raise UsageError(f"cannot load {str(weights)!r} into the run's model: {err}") from None
    assert isinstance(cfg, omegaconf.DictConfig)
    return model.eval(), build_task(cfg), cfg


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
        None, "--run", help="Run directory: uses DIR/checkpoints/latest/ and DIR/config.yaml."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Local Hugging Face causal-LM directory (save_pretrained)."
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
    temperature: float = typer.Option(
        1.0, "--temperature", help="Sampling temperature; entropies are measured at it."
    ),
    dtype: str = typer.Option(
        "float32", "--dtype", help="float32 (default) or float64 for the model copy and entropies."
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

    from steerbench.analysis.estimators import ESTIMATORS
    from steerbench.analysis.omega import check_options
    from steerbench.analysis.rollouts import coin_flip_rewards, make_batch
    from steerbench.analysis.validate import validate, write_outputs

    if out is not None:
        ensure_writable(out, "--out")
    names = _parse_list(estimators, "estimators")
    sweep = _parse_list(lrs, "lrs", float) if lrs else []
    for x in [lr, *sweep]:
        check_options(optimizer, x, names, temperature)
    if run is not None and model is not None:
        raise UsageError("--run and --model are exclusive; pass one policy source")
    if min(batches, prompts, group_size) < 1:
        raise UsageError(
            f"--batches, --prompts and --group-size must be ≥ 1 (got {batches}, {prompts}, {group_size})"
        )
    if n_boot < 0:
        raise UsageError(f"--n-boot={n_boot} must be ≥ 0")
    if rewards not in ("task", "random"):
        raise UsageError(f"--rewards={rewards!r} is unknown; choose task or random")
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in dtypes:
        raise UsageError(f"--dtype={dtype!r} is unknown; choose float32 or float64")
    del ESTIMATORS

    console = Console(stderr=True)
    gen = torch.Generator().manual_seed(seed)
    cfg = _default_config()
    if method is not None:
        _method_from(cfg, method)  # unknown method → exit 2 before loading anything
    source: dict[str, Any]
    if model is not None:
        from steerbench.local.hf import load_hf_policy

        policy = load_hf_policy(model).eval()
        vocab = int(policy.vocab_size)
        eos = getattr(policy.lm.config, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, list) else eos
        prompt_len, max_new = 8, 16

        def draw_prompts() -> torch.Tensor:
            return torch.randint(0, vocab, (prompts, prompt_len), generator=gen)

        reward_fn = coin_flip_rewards(gen)
        source = {"source": "hf", "model": str(model), "rewards": "coin flips (no verifier)"}
    else:
        if run is not None:
            policy, task, cfg = _run_policy(Path(run))
            source = {"source": "run", "run": str(run)}
        else:
            policy, task = _embedded_policy(cfg, console)
            source = {"source": "embedded"}
        from steerbench.local.tasks import TOKENIZER, prompt_tensor, score

        eos, max_new = TOKENIZER.eos_id, task.max_response_len
        problems: list[Any] = []

        def draw_prompts() -> torch.Tensor:
            problems[:] = task.sample_problems(prompts, gen)
            return prompt_tensor(problems)

        def task_reward(reps: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            expanded = [p for p in problems for _ in range(group_size)]
            return score(task, expanded, responses * mask.long())

        reward_fn = task_reward if rewards == "task" else coin_flip_rewards(gen)
        source["rewards"] = "task verifier" if rewards == "task" else "coin flips"

        source["task"] = getattr(task, "name", type(task).__name__)
    method_name, knobs = _method_from(cfg, method)

    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        job = bar.add_task("sampling rollouts", total=batches)
        rollouts = []
        for _ in range(batches):
            rollouts.append(
                make_batch(
                    policy,
                    draw_prompts(),
                    group_size,
                    max_new,
                    temperature,
                    eos,
                    reward_fn,
                    method_name,
                    gen,
                    knobs,
                )
            )
            bar.advance(job)
        if (
            all(bool((b.advantages == 0).all()) for b in rollouts)
            and source.get("rewards") == "task verifier"
        ):
            console.print(
                "[yellow]warning:[/] the task verifier gave no group any reward variance (every advantage is 0); "
                "using coin-flip rewards instead (pass --rewards random to choose this explicitly)"
            )
            source["rewards"] = "coin flips (task rewards had no variance)"
            flips = coin_flip_rewards(gen)
            rollouts = [
                make_batch(
                    policy,
                    draw_prompts(),
                    group_size,
                    max_new,
                    temperature,
                    eos,
                    flips,
                    method_name,
                    gen,
                    knobs,
                )
                for _ in range(batches)
            ]
        steps = batches * (1 + len([x for x in sweep if x != lr]))
        job2 = bar.add_task(f"one {optimizer} step per batch, {len(names)} estimators", total=steps)
        frame, report = validate(
            policy,
            rollouts,
            method=method_name,
            optimizer=optimizer,
            lr=lr,
            lrs=sweep,
            estimators=names,
            temperature=temperature,
            knobs=knobs,
            dtype=dtypes[dtype],
            n_boot=n_boot,
            seed=seed,
            progress=lambda _msg: bar.advance(job2),
            setup={
                **source,
                "prompts_per_batch": prompts,
                "group_size": group_size,
                "mean_reward": float(torch.cat([b.rewards for b in rollouts]).mean()),
            },
        )
    s = report["setup"]
    if s["measured_abs_mean"] < 100 * s["resolution"]:
        console.print(
            f"[yellow]warning:[/] mean |ΔH| = {s['measured_abs_mean']:.2e} is within 100× of the {s['dtype']} "
            f"rounding resolution ({s['resolution']:.2e}); rounding noise degrades every statistic. "
            "Raise --lr or pass --dtype float64."
        )
    written = write_outputs(out, frame, report) if out is not None else []
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    _print_report(report, written)


def _print_report(report: dict[str, Any], written: list[Path]) -> None:
    def f(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"

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
