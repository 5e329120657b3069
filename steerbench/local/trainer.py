"""The embedded GRPO trainer: one file, read top to bottom (CleanRL style).

Each RL step:
    1. sample n responses for each of P prompts at temperature T (KV-cache sampler, seeded generator)
    2. reward them with the task's exact verifier (or coin flips in the random_reward scenario)
    3. shape advantages with the method's shaper (GRPO group normalisation unless the method says otherwise)
    4. log π_old and π_old's entropy come from the sampler; log π_ref (where the method needs it) teacher-forced
    5. ppo_epochs × minibatches optimiser steps on the method's loss (AdamW, grad-norm clip)
    6. log metrics; update scheduled knobs; checkpoint every k steps (model, optimiser, all RNG states)

All randomness flows through one seeded torch.Generator (sampling, minibatch order, coin flips) and
torch's global generator (Clip-Cov's random pick), both checkpointed, so a resumed run is bit-identical.
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from steerbench.config import method_knobs, to_dict
from steerbench.errors import RunFailed, UsageError
from steerbench.local.hf import load_hf_policy
from steerbench.local.model import ModelConfig
from steerbench.local.sampler import Rollout, response_logprobs, sample
from steerbench.local.warmstart import warm_start
from steerbench.methods import PolicyBatch, compute_advantages, compute_policy_loss, get_method
from steerbench.rewards import coin_flips
from steerbench.runstore import RunStore, atomic_torch_save, atomic_write_json
from steerbench.tasks.core import Problem, Task, prompt_tensor, score
from steerbench.tasks.registry import get_task
from steerbench.tasks.text import TextTask

EVAL_SEED = 2_718_281  # held-out prompts are the same for every run and seed
PER_PROMPT = "per_prompt"  # evaluate()'s per-prompt record: written to evaluations/, not to metrics.jsonl


@dataclass
class TrainState:
    policy: nn.Module
    reference: nn.Module | None  # frozen warm-start policy, for methods with a KL term
    optimizer: torch.optim.Optimizer
    method_cfg: Any  # the method's typed config; scheduled knobs change between steps
    generator: torch.Generator
    step: int = 0  # RL steps completed
    last_entropy: float | None = None


def build_task(cfg: DictConfig) -> Task:
    params = to_dict(cfg.task)
    name = params.pop("name")  # a text task binds to the model's tokenizer
    return get_task(name, model_path=cfg.model.hf_path, **params)


def cache_dir(cfg: DictConfig | None = None) -> Path:
    """steerbench's cache: ``warm_start.cache_dir`` if set, else $STEERBENCH_CACHE, else ~/.cache/steerbench."""
    configured = cfg.warm_start.cache_dir if cfg is not None else None
    configured = configured or os.environ.get("STEERBENCH_CACHE") or "~/.cache/steerbench"
    return Path(configured).expanduser()


def build_policy(
    cfg: DictConfig, task: Task, progress: Callable[[int, int], None] | None = None
) -> nn.Module:
    if cfg.model.hf_path:
        policy = load_hf_policy(cfg.model.hf_path)
        if isinstance(task, TextTask):  # its prompts differ in length: left-padded with the tokenizer's pad
            policy.pad_id = task.tokenizer.pad_id
        if int(policy.vocab_size) < task.tokenizer.vocab_size:
            raise UsageError(
                f"model {cfg.model.hf_path} has a vocabulary of {policy.vocab_size} ids; task {task.name} "
                f"needs at least {task.tokenizer.vocab_size}"
            )
        return policy
    model_cfg = ModelConfig(
        vocab_size=task.tokenizer.vocab_size,
        n_layer=cfg.model.n_layer,
        n_head=cfg.model.n_head,
        d_model=cfg.model.d_model,
        max_seq_len=cfg.model.max_seq_len,
    )
    ws, cache = cfg.warm_start, cache_dir(cfg)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the warm-start cache {cache} ({exc.strerror}); set STEERBENCH_CACHE or "
            "warm_start.cache_dir to a writable folder"
        ) from None
    with open(cache / "warmstart.lock", "w") as lock:  # parallel grid cells warm up once, not once each
        fcntl.flock(lock, fcntl.LOCK_EX)
        return warm_start(model_cfg, task, ws.steps, ws.lr, ws.batch_size, ws.seed, cache, progress)


def init_state(cfg: DictConfig, policy: nn.Module) -> TrainState:
    spec = get_method(cfg.method.name)
    torch.manual_seed(cfg.trainer.seed)
    reference = None
    if "ref_log_prob" in spec.needs:
        reference = copy.deepcopy(policy).requires_grad_(False)
    optimizer = torch.optim.AdamW(  # fused: one kernel for all parameters; its sums round differently
        policy.parameters(),
        lr=cfg.trainer.lr,
        weight_decay=cfg.trainer.weight_decay,
        fused=cfg.trainer.fused_adamw,
    )
    generator = torch.Generator().manual_seed(cfg.trainer.seed)
    return TrainState(policy, reference, optimizer, spec.make_config(**method_knobs(cfg)), generator)


def rl_step(cfg: DictConfig, task: Task, state: TrainState) -> dict[str, float]:
    t, name, spec = cfg.trainer, cfg.method.name, get_method(cfg.method.name)
    knobs = dataclasses.asdict(state.method_cfg)
    started = time.perf_counter()

    # 1–2. rollouts and rewards
    problems = [
        p
        for p in task.sample_problems(t.prompts_per_step, state.generator)
        for _ in range(t.samples_per_prompt)
    ]
    state.policy.eval()
    with torch.no_grad():
        rollout = sample(
            state.policy,
            task_prompts(task, problems, state.policy),
            task.max_response_len,
            t.temperature,
            task.tokenizer.eos_id,
            state.generator,
            pad_id=task.tokenizer.pad_id,
        )
    device = rollout.tokens.device
    correct = score(task, problems, rollout.responses).to(device)
    rewards = correct
    if cfg.scenario.random_reward:
        rewards = coin_flips(len(correct), state.generator).to(device)
    group_index = torch.arange(t.prompts_per_step, device=device).repeat_interleave(t.samples_per_prompt)
    mask = rollout.response_mask

    # 3–4. advantages; π_old's log-probs and entropy are the sampler's (the same weights in the same eval
    # mode, so a teacher-forced recompute would differ only in float rounding); reference log-probs
    old_log_prob, old_entropy = rollout.old_log_prob, rollout.entropy
    with torch.no_grad():
        ref_log_prob = None
        if state.reference is not None:
            ref_log_prob, _ = response_logprobs(
                state.reference, rollout.tokens, rollout.prompt_len, t.temperature, t.share_prompts
            )
    advantages = compute_advantages(name, rewards, group_index, mask, old_log_prob, **knobs)

    # 5. PPO epochs over minibatches with the method's loss
    row = ppo_updates(cfg, state, rollout, advantages, rewards, group_index, ref_log_prob)

    # 6. metrics and scheduled knobs
    entropy_mean = float((old_entropy * mask).sum() / mask.sum())
    elapsed = time.perf_counter() - started
    row.update(
        {
            "entropy/mean": entropy_mean,
            "entropy/delta": 0.0 if state.last_entropy is None else entropy_mean - state.last_entropy,
            "reward/mean": float(rewards.mean()),
            "acc/train": float(correct.mean()),
            "len/response_mean": float(mask.sum(-1).mean()),
            "time/step_s": elapsed,
            "throughput/tokens_per_s": float(mask.sum()) * (1 + t.ppo_epochs) / elapsed,
        }
    )
    state.step += 1
    state.last_entropy = entropy_mean
    if spec.schedule is not None:
        progress = {"step": state.step - 1, "total_steps": t.steps, "entropy": entropy_mean}
        state.method_cfg = spec.schedule(state.method_cfg, progress)
    return row


def ppo_updates(
    cfg: DictConfig,
    state: TrainState,
    rollout: Rollout,
    advantages: torch.Tensor,
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    ref_log_prob: torch.Tensor | None,
) -> dict[str, float]:
    """``ppo_epochs`` passes over the rollout in ``minibatches`` shuffled minibatches (order drawn from the
    run's generator), one optimiser step each on the method's loss; the loss metrics averaged over steps."""
    t, name, spec = cfg.trainer, cfg.method.name, get_method(cfg.method.name)
    knobs = dataclasses.asdict(state.method_cfg)
    mask, device = rollout.response_mask, rollout.tokens.device
    state.policy.train()
    rows = rewards.shape[0]
    per_minibatch = rows // t.minibatches
    sums: dict[str, float] = {}
    updates = 0
    for _ in range(t.ppo_epochs):
        order = torch.randperm(rows, generator=state.generator).to(device)
        for start in range(0, rows, per_minibatch):
            idx = order[start : start + per_minibatch]
            log_prob, entropy = response_logprobs(
                state.policy, rollout.tokens[idx], rollout.prompt_len, t.temperature, t.share_prompts
            )
            batch = PolicyBatch(
                log_prob=log_prob,
                old_log_prob=rollout.old_log_prob[idx],
                advantages=advantages[idx],
                response_mask=mask[idx],
                entropy=entropy if "entropy_grad" in spec.needs else entropy.detach(),
                ref_log_prob=None if ref_log_prob is None else ref_log_prob[idx],
                group_index=group_index[idx],
                rewards=rewards[idx],
                old_entropy=rollout.entropy[idx],  # π_old's entropy, from the same pass as old_log_prob
            )
            loss, metrics = compute_policy_loss(name, batch, **knobs)
            if not torch.isfinite(loss):
                raise RunFailed(f"loss became {loss.item()} at step {state.step + 1}; lower trainer.lr")
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(state.policy.parameters(), t.grad_clip)
            state.optimizer.step()
            metrics.update({"loss/total": loss.item(), "grad/norm": float(grad_norm)})
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            updates += 1
    return {key: value / updates for key, value in sums.items()}


def evaluate(cfg: DictConfig, task: Task, policy: nn.Module, step: int) -> dict[str, Any]:
    """val/pass@1 (mean accuracy) and val/pass@k (any of k samples correct) on fixed held-out prompts, and
    under ``PER_PROMPT`` each prompt's number of correct samples (the run store keeps it apart)."""
    t = cfg.trainer
    problems: list[Problem] = task.sample_problems(t.eval_prompts, torch.Generator().manual_seed(EVAL_SEED))
    repeated = [p for p in problems for _ in range(t.pass_k)]
    generator = torch.Generator().manual_seed(EVAL_SEED + 7919 * step + t.seed)
    policy.eval()
    with torch.no_grad():
        rollout = sample(
            policy,
            task_prompts(task, repeated, policy),
            task.max_response_len,
            t.temperature,
            task.tokenizer.eos_id,
            generator,
            pad_id=task.tokenizer.pad_id,
        )
    correct = score(task, repeated, rollout.responses).view(t.eval_prompts, t.pass_k)
    mask = rollout.response_mask
    return {
        "val/pass@1": float(correct.mean()),
        "val/pass@k": float((correct.sum(-1) > 0).float().mean()),
        "val/entropy": float((rollout.entropy * mask).sum() / mask.sum()),
        PER_PROMPT: {"k": int(t.pass_k), "correct": [int(c) for c in correct.sum(-1).tolist()]},
    }


def task_prompts(task: Task, problems: list[Problem], policy: nn.Module) -> torch.Tensor:
    """The problems' prompt ids (B, P), left-padded with the task's pad id, on the policy's device."""
    return prompt_tensor(problems, task.tokenizer.pad_id).to(next(policy.parameters()).device)


def training_device(cfg: DictConfig) -> torch.device:
    """``trainer.device``, refused (exit 2) where torch sees no such device."""
    device = torch.device(cfg.trainer.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"trainer.device={cfg.trainer.device}: torch sees no CUDA GPU here (torch.cuda.is_available() is "
            "False); use trainer.device=cpu"
        )
    return device


# what the numbers of a step-0 evaluation depend on besides the config: the code that samples and scores
EVALUATION_CODE = ("local/sampler.py", "local/model.py", "tasks/core.py", "tasks/tail.py", "local/trainer.py")


def warm_start_evaluation(cfg: DictConfig, task: Task, policy: nn.Module) -> dict[str, Any]:
    """:func:`evaluate` at step 0, cached beside the warm start.

    Every cell of a grid with this seed, task, model and evaluation setting starts from the same warm start,
    so its step-0 evaluation gives the same numbers: computed once, read back by the others (a `controls`
    or `paper` grid evaluates 128 prompts × 64 samples, ≈ 6 CPU-s, per cell). The key holds everything
    those numbers depend on, the thread count and the source of the code that samples and scores included.
    """
    if cfg.model.hf_path:  # a user's model: not ours to cache
        return evaluate(cfg, task, policy, 0)
    t = cfg.trainer
    package = Path(__file__).resolve().parents[1]  # steerbench/
    identity = {
        "model": to_dict(cfg.model),
        "warm_start": {k: v for k, v in to_dict(cfg.warm_start).items() if k != "cache_dir"},
        "task": to_dict(cfg.task),
        "evaluation": [EVAL_SEED, t.seed, t.eval_prompts, t.pass_k, t.temperature],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "code": [hashlib.sha256((package / name).read_bytes()).hexdigest() for name in EVALUATION_CODE],
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_dir(cfg) / f"evaluation-step0-{key}.json"
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and PER_PROMPT in cached:
            return cached
    except (OSError, ValueError):  # absent, or damaged: the numbers are recomputed and the file rewritten
        pass
    metrics = evaluate(cfg, task, policy, 0)
    atomic_write_json(path, metrics)
    return metrics


def save_checkpoint(store: RunStore, state: TrainState) -> None:
    atomic_torch_save(
        store.checkpoint_path,
        {
            "step": state.step,
            "model": state.policy.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "method_cfg": dataclasses.asdict(state.method_cfg),
            "generator": state.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            # a GPU run draws on the device's generator too (Clip-Cov's random pick on device tensors)
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "last_entropy": state.last_entropy,
        },
    )


def load_checkpoint(store: RunStore, state: TrainState) -> None:
    path = store.checkpoint_path
    try:
        ckpt = torch.load(path, weights_only=False)
        state.policy.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
    except Exception as exc:  # any unpickling or shape error means the file cannot be trusted
        raise RunFailed(
            f"checkpoint {path} is corrupt ({type(exc).__name__}); delete it to restart the run"
        ) from None
    state.method_cfg = dataclasses.replace(state.method_cfg, **ckpt["method_cfg"])
    state.generator.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    state.step = ckpt["step"]
    state.last_entropy = ckpt["last_entropy"]


StepMetrics = Callable[[DictConfig, Task, nn.Module, "nn.Module | None", int], dict[str, float]]


def train(
    cfg: DictConfig,
    store: RunStore,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_warm_start: Callable[[int, int], None] | None = None,
    step_metrics: StepMetrics | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) the whole RL loop; returns every metrics row of the run.

    ``step_metrics(cfg, task, policy, reference, step)`` adds measurements every ``trainer.omega_every`` steps (the
    run executor passes the in-training Ω validation); it must leave the policy and every RNG untouched.
    """
    t = cfg.trainer
    if t.threads:  # 0 keeps torch's setting (a grid worker sets its share of the cores)
        torch.set_num_threads(t.threads)
    task = build_task(cfg)
    policy = build_policy(cfg, task, on_warm_start).to(training_device(cfg))
    state = init_state(cfg, policy)
    if store.checkpoint_path.exists():
        load_checkpoint(store, state)
    store.truncate_metrics(state.step if state.step > 0 else -1)  # rows past the checkpoint are redone
    if state.step == 0:
        first = {"step": 0, **warm_start_evaluation(cfg, task, state.policy)}
        store.write_evaluation(0, first.pop(PER_PROMPT))
        store.append_metrics(first)
        if on_step:
            on_step(first)
    while state.step < t.steps:
        row = rl_step(cfg, task, state)
        if state.step % t.eval_every == 0 or state.step == t.steps:
            row.update(evaluate(cfg, task, state.policy, state.step))
            store.write_evaluation(state.step, row.pop(PER_PROMPT))
        if step_metrics is not None and t.omega_every and state.step % t.omega_every == 0:
            row.update(step_metrics(cfg, task, state.policy, state.reference, state.step))
        logged = {"step": state.step, **{k: _finite(v) for k, v in row.items()}}
        store.append_metrics(logged)
        if state.step % t.checkpoint_every == 0 or state.step == t.steps:
            save_checkpoint(store, state)
        if on_step:
            on_step(logged)
    return store.read_metrics()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
