"""Supervised warm start: teach the tiny policy a task's (deliberately noisy) SFT targets, cached on disk.

Loss: mean cross-entropy over response tokens only (answer characters and the EOS), prompts are
context. Data are drawn fresh every step from the task (`sample_problems` + `sft_example`). AdamW with
linear warm-up over the first 5% of steps, then cosine decay to 10% of `lr`.

Cache: `cache_dir/warmstart-<sha256[:16]>.pt`, keyed by the model config, the task name and knobs,
steps, lr, batch size, seed, torch's version and thread count (CPU sums round differently with more threads:
after 60 steps the weights of a 1- and a 2-thread warm start differ by up to 1e-6) and `CODE_VERSION` (bump
it whenever this training recipe changes); written
atomically (``runstore.atomic_torch_save``), so a grid warms up once and concurrent runs never read half a file.
Deterministic: the same arguments give bit-identical weights (seeded locally; the caller's global RNG is
left untouched).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from steerbench.errors import UsageError
from steerbench.local.model import ModelConfig, TinyPolicy
from steerbench.runstore import atomic_torch_save
from steerbench.tasks.core import Task, task_params

CODE_VERSION = "warmstart-v1"


def cache_key(model_cfg: ModelConfig, task: Task, steps: int, lr: float, batch_size: int, seed: int) -> str:
    """SHA-256 over everything that determines the warm-started weights."""
    spec = {
        "model": dataclasses.asdict(model_cfg),
        "task": task_params(task),
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "code": CODE_VERSION,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def sft_batch(task: Task, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B, P+R), loss_mask (B, P+R−1)): prompt + SFT response + EOS, PAD-filled to P+R.

    loss_mask[b, i] = 1 where tokens[b, i+1] is a response token (incl. EOS): the next-token targets.
    """
    P, R, tok = task.prompt_len, task.max_response_len, task.tokenizer
    tokens = torch.full((batch_size, P + R), tok.pad_id, dtype=torch.long)
    mask = torch.zeros(batch_size, P + R - 1)
    for b, problem in enumerate(task.sample_problems(batch_size, generator)):
        response = [*tok.render(task.sft_example(problem, generator), generator), tok.eos_id][:R]
        tokens[b, : P + len(response)] = torch.tensor(problem.prompt_ids + response)
        mask[b, P - 1 : P - 1 + len(response)] = 1.0
    return tokens, mask


def _lr_factor(step: int, steps: int) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def warm_start(
    model_cfg: ModelConfig,
    task: Task,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> TinyPolicy:
    """A TinyPolicy trained for `steps` supervised steps on `task`, loaded from cache when present.

    `progress(done, total)` is called after every training step (never on a cache hit).
    """
    if model_cfg.vocab_size != task.tokenizer.vocab_size:
        raise UsageError(
            f"model vocab_size={model_cfg.vocab_size} but the task tokenizer has {task.tokenizer.vocab_size} ids"
        )
    if model_cfg.max_seq_len < task.prompt_len + task.max_response_len:
        raise UsageError(
            f"model max_seq_len={model_cfg.max_seq_len} is shorter than task {task.name!r} sequences "
            f"({task.prompt_len} prompt + {task.max_response_len} response tokens)"
        )
    if steps < 0 or batch_size < 1 or not lr > 0:
        raise UsageError(
            f"warm start needs steps ≥ 0, batch_size ≥ 1, lr > 0 (got {steps}, {batch_size}, {lr})"
        )
    cache_dir = Path(cache_dir)
    path = cache_dir / f"warmstart-{cache_key(model_cfg, task, steps, lr, batch_size, seed)[:16]}.pt"
    if path.is_file():
        model = TinyPolicy(model_cfg)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    with torch.random.fork_rng(devices=[]):  # seeded locally: the caller's global RNG is left untouched
        torch.manual_seed(seed)
        model = TinyPolicy(model_cfg)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps))
    model.train()
    for step in range(steps):
        tokens, mask = sft_batch(task, batch_size, generator)
        logits = model(tokens[:, :-1])
        nll = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
        loss = (nll * mask.flatten()).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None:
            progress(step + 1, steps)
    model.eval()
    atomic_torch_save(path, model.state_dict())
    return model
