"""Rollouts from vLLM for ``validate-omega --sampler vllm`` on a GPU: the same distribution as ``generate``
(multinomial at the temperature, no top-k or top-p), for long responses of real models.

The engine loads the model's saved weights once. Every measured step starts from those weights (each batch's
step is taken on a fresh copy of the policy), so the engine never needs a weight update. Each row gets its
own vLLM seed drawn from the caller's generator, so a seeded validation draws the same rollouts again.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from steerbench.errors import UsageError
from steerbench.local.hf import left_pad_attention

SAMPLERS = ("auto", "generate", "vllm")


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_sampler(sampler: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """``auto`` → vllm when it is installed, the device is a GPU and vLLM has the dtype (not float64),
    else generate; an explicit vllm is checked."""
    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler={sampler!r} is unknown; choose {', '.join(SAMPLERS)}")
    if sampler == "auto":
        usable = device.type == "cuda" and dtype != torch.float64 and vllm_installed()
        return "vllm" if usable else "generate"
    if sampler == "vllm" and dtype == torch.float64:
        raise UsageError("vLLM has no float64 kernels: pass --sampler generate with --dtype float64")
    if sampler == "vllm" and device.type != "cuda":
        raise UsageError("--sampler vllm needs a GPU: pass --device cuda (or --sampler generate)")
    if sampler == "vllm" and not vllm_installed():
        raise UsageError("--sampler vllm needs vLLM: pip install vllm (or pass --sampler generate)")
    return sampler


def load_engine(path: str | Path, dtype: torch.dtype, gpu_memory_utilization: float = 0.3) -> Any:
    """A vLLM engine on the saved model, leaving most of the GPU to the policy's forward and backward."""
    from vllm import LLM

    return LLM(
        model=str(path),
        dtype=str(dtype).removeprefix("torch."),
        gpu_memory_utilization=gpu_memory_utilization,
        enforce_eager=True,
    )


def vllm_generate(
    engine: Any,
    prompts: torch.Tensor,
    pad_id: int,
    max_new_tokens: int,
    temperature: float,
    eos_id: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, P+T), response_mask (B, T)) as ``generate`` returns them: LEFT-padded prompts, responses
    right-padded with ``pad_id``, mask 1 up to and including the first EOS."""
    from vllm import SamplingParams

    seeds = torch.randint(0, 2**31 - 1, (prompts.shape[0],), generator=generator).tolist()
    keep = left_pad_attention(prompts, pad_id).bool().cpu()
    requests = [{"prompt_token_ids": row[k].tolist()} for row, k in zip(prompts.cpu(), keep, strict=True)]
    params = [
        SamplingParams(
            n=1,
            temperature=temperature,
            top_k=-1,
            top_p=1.0,
            max_tokens=max_new_tokens,
            seed=int(seed),
            stop_token_ids=[eos_id] if eos_id is not None else None,
        )
        for seed in seeds
    ]
    outputs = engine.generate(requests, params, use_tqdm=False)
    responses = [_with_eos(out.outputs[0], eos_id, max_new_tokens) for out in outputs]
    width = max(1, max(len(r) for r in responses))
    tokens = torch.full((len(responses), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(responses), width)
    for i, response in enumerate(responses):
        tokens[i, : len(response)] = torch.tensor(response, dtype=torch.long)
        mask[i, : len(response)] = 1.0
    return torch.cat([prompts, tokens.to(prompts.device)], 1), mask.to(prompts.device)


def _with_eos(completion: Any, eos_id: int | None, max_new_tokens: int) -> list[int]:
    """The completion's ids, ending in the EOS when it stopped on one (vLLM may leave a stop id out)."""
    ids = list(completion.token_ids)
    stopped = getattr(completion, "finish_reason", None) == "stop" and len(ids) < max_new_tokens
    if eos_id is not None and stopped and (not ids or ids[-1] != eos_id):
        ids.append(eos_id)
    return ids
