"""The policies ``validate-omega`` measures, each with its prompt source: embedded, a run, or any causal LM.

:func:`embedded_subject`, :func:`hf_subject` and :func:`run_subjects` return :class:`Subject` s
(``run_subjects`` several for a verl run's checkpoints over training). Every model is put on the
requested device in the requested dtype; a Hugging Face model with a tokenizer is fed its own
chat-templated prompts (from ``--data``) and scored by the math reward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steerbench.analysis.omega.rollouts import SampleFn
from steerbench.analysis.omega.sources import PromptSource, parquet_source, random_id_source, task_source
from steerbench.analysis.omega.vllm_sampling import load_engine, vllm_generate
from steerbench.errors import UsageError
from steerbench.local.hf import load_hf_policy
from steerbench.local.policy_io import load_run_policy, read_run_config, verl_checkpoints
from steerbench.local.trainer import build_policy, build_task
from steerbench.tasks.chat import load_hf_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class Subject:
    policy: nn.Module
    source: PromptSource
    setup: dict[str, Any]  # the report's setup fields that say what was measured
    cfg: Any = None  # the run's composed config, for its method (None: the default config)
    step: int | None = None  # training step of a checkpoint
    sample: SampleFn | None = None  # vLLM's rollouts (``--sampler vllm``); None: the policy's own sampling


@dataclass
class HFOptions:
    data: Path | None = None
    max_new_tokens: int | None = None
    max_prompt_tokens: int = 1024
    sampler: str = "generate"  # resolved by analysis.vllm_sampling.resolve_sampler: generate or vllm


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise UsageError(f"--device={device!r} is unknown; choose {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False); "
            "use --device cpu, or --device auto to take a GPU only when there is one"
        )
    return torch.device(device)


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise UsageError(f"--dtype={dtype!r} is unknown; choose {', '.join(DTYPES)}")
    return DTYPES[dtype]


def hf_subject(path: str | Path, opts: HFOptions, dtype: torch.dtype, device: torch.device) -> Subject:
    """A local Hugging Face causal LM with its own tokenizer (prompts from ``opts.data``), or tokenizer-free."""

    policy = load_hf_policy(path, dtype).to(device).eval()
    tokenizer = load_hf_tokenizer(path)
    eos = _eos_id(policy, tokenizer)
    if opts.data is None:
        if opts.sampler == "vllm":
            raise UsageError("--sampler vllm samples from the model's own prompts: pass --data FILE.parquet")
        if tokenizer is not None:
            raise UsageError(
                f"--model {str(path)!r} has a tokenizer; pass --data FILE.parquet (verl format, e.g. "
                "../shared/datasets/math500.parquet) so it is fed real prompts in its own chat template"
            )
        source = random_id_source(int(policy.vocab_size), eos, max_new_tokens=opts.max_new_tokens or 16)
        return Subject(policy, source, {"source": "hf", "model": str(path), "tokenizer": None})
    if tokenizer is None:
        raise UsageError(
            f"--data needs the model's tokenizer, but {str(path)!r} has none (no tokenizer.json)"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if pad is None:
        raise UsageError(f"the tokenizer at {str(path)!r} has neither a pad nor an EOS token")
    policy.pad_id = int(pad)
    source = parquet_source(
        opts.data, tokenizer, int(pad), eos, opts.max_new_tokens or 512, opts.max_prompt_tokens
    )
    tok_name = type(tokenizer).__name__
    return Subject(
        policy,
        source,
        {"source": "hf", "model": str(path), "tokenizer": tok_name},
        sample=_vllm_sample(path, dtype, int(pad)) if opts.sampler == "vllm" else None,
    )


def _vllm_sample(path: str | Path, dtype: torch.dtype, pad: int) -> SampleFn:

    engine = load_engine(path, dtype)
    return lambda prompts, max_new, temperature, eos, gen: vllm_generate(
        engine, prompts, pad, max_new, temperature, eos, gen
    )


def _eos_id(policy: Any, tokenizer: Any) -> int | None:
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    if eos is None:
        eos = getattr(policy.lm.config, "eos_token_id", None)
    return int(eos[0] if isinstance(eos, list) else eos) if eos is not None else None


def embedded_subject(cfg: Any, device: torch.device, progress: Callable[[int, int], None] | None) -> Subject:
    """The trainer's own warm-started policy (same cache, so a grid's warm start is reused)."""

    task = build_task(cfg)
    policy = build_policy(cfg, task, progress=progress).to(device).eval()
    return Subject(policy, task_source(task, task.max_response_len), {"source": "embedded"}, cfg)


def run_subjects(
    run_dir: Path, opts: HFOptions, dtype: torch.dtype, device: torch.device, checkpoints: str
) -> list[Subject]:
    """An embedded run's latest checkpoint, or a verl run's HF exports (``checkpoints``: latest or all)."""

    if checkpoints not in ("latest", "all"):
        raise UsageError(f"--checkpoints={checkpoints!r} is unknown; choose latest or all")
    if not run_dir.is_dir():
        raise UsageError(f"--run {str(run_dir)!r} is not a directory")
    cfg = read_run_config(run_dir)
    if str(cfg.get("backend", "local")) != "verl":
        if checkpoints == "all":
            raise UsageError(
                "--checkpoints all is for verl runs; an embedded run keeps only checkpoints/latest.pt"
            )
        policy, task, cfg = load_run_policy(run_dir)
        source = task_source(task, task.max_response_len)
        return [Subject(policy.to(device), source, {"source": "run", "run": str(run_dir)}, cfg)]
    exports = verl_checkpoints(run_dir)
    if checkpoints == "latest":
        exports = exports[-1:]
    data = opts.data or Path(str(cfg.verl.train_files))
    subjects = []
    for step, export in exports:
        sub = hf_subject(export, HFOptions(data, opts.max_new_tokens, opts.max_prompt_tokens), dtype, device)
        sub.setup = {**sub.setup, "source": "verl_run", "run": str(run_dir), "checkpoint_step": step}
        sub.cfg, sub.step = cfg, step
        subjects.append(sub)
    return subjects
