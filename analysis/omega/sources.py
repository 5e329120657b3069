"""Where ``validate-omega``'s prompts and rewards come from, and the rollout batches drawn from them.

A :class:`PromptSource` draws ``n`` prompts as one LEFT-padded id tensor ``(n, P)`` plus one record per
prompt, and scores sampled responses against those records:

* :func:`task_source`     an embedded task: its prompts and exact verifier;
* :func:`parquet_source`  a verl-format parquet file (``prompt`` = chat messages, ``reward_model.ground_truth``,
                          ``data_source``, ``extra_info``) through the model's own tokenizer and chat template,
                          scored with the verl backend's math reward (``steerbench.rewards.compute_score``:
                          +1 correct, −1 wrong);
* :func:`random_id_source` random prompt ids and no verifier (a model without a tokenizer).

:func:`collect_batches` samples the rollout batches; when the verifier leaves every group without reward
variance (every advantage 0: nothing to learn, nothing to measure) it redraws with coin-flip rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steerbench.analysis.omega.measure import RolloutBatch
from steerbench.analysis.omega.rollouts import RewardFn, SampleFn, coin_flip_rewards, make_batch
from steerbench.errors import UsageError
from steerbench.rewards import compute_score
from steerbench.tasks.chat import left_pad, prompt_ids, read_verl_parquet
from steerbench.tasks.core import TOKENIZER, prompt_tensor, score

Draw = Callable[[int, torch.Generator], tuple[torch.Tensor, list[Any]]]
Score = Callable[[list[Any], torch.Tensor, torch.Tensor], torch.Tensor]  # records, responses, mask → (B,)


@dataclass
class PromptSource:
    description: dict[str, Any]  # goes into the report's setup
    draw: Draw
    score: Score | None  # None: no verifier, coin flips
    eos_id: int | None
    max_new_tokens: int


def task_source(task: Any, max_new_tokens: int) -> PromptSource:
    def draw(n: int, gen: torch.Generator) -> tuple[torch.Tensor, list[Any]]:
        problems = task.sample_problems(n, gen)
        return prompt_tensor(problems), problems

    def verify(problems: list[Any], responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return score(task, problems, (responses * mask.long()).cpu())

    name = getattr(task, "name", type(task).__name__)
    return PromptSource(
        {"task": name, "rewards": "task verifier"}, draw, verify, TOKENIZER.eos_id, max_new_tokens
    )


def random_id_source(
    vocab: int, eos_id: int | None, prompt_len: int = 8, max_new_tokens: int = 16
) -> PromptSource:
    def draw(n: int, gen: torch.Generator) -> tuple[torch.Tensor, list[Any]]:
        return torch.randint(0, vocab, (n, prompt_len), generator=gen), [None] * n

    return PromptSource({"prompts": "random ids"}, draw, None, eos_id, max_new_tokens)


def parquet_source(
    path: str | Path,
    tokenizer: Any,
    pad_id: int,
    eos_id: int | None,
    max_new_tokens: int,
    max_prompt_tokens: int,
) -> PromptSource:
    """Prompts from a verl-format parquet file, rewarded by the verl backend's math reward."""
    try:
        import math_verify  # noqa: F401  the reward's symbolic comparison
    except ImportError:
        raise UsageError(
            "scoring --data with the math reward needs math-verify: pip install 'steerbench[verl]' "
            "(or pip install math-verify)"
        ) from None
    rows = read_verl_parquet(path)
    encoded = [prompt_ids(tokenizer, r["prompt"]) for r in rows]
    keep = [i for i, ids in enumerate(encoded) if len(ids) <= max_prompt_tokens]
    if not keep:
        raise UsageError(
            f"every prompt of {str(path)!r} is longer than --max-prompt-tokens={max_prompt_tokens}; raise it"
        )

    def draw(n: int, gen: torch.Generator) -> tuple[torch.Tensor, list[Any]]:
        picks = [keep[int(i)] for i in torch.randperm(len(keep), generator=gen)[:n]]
        if len(picks) < n:
            raise UsageError(f"--prompts={n} but {str(path)!r} has only {len(keep)} usable prompts")
        return left_pad([encoded[i] for i in picks], pad_id), [rows[i] for i in picks]

    def score(records: list[Any], responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = []
        for rec, resp, m in zip(records, responses.cpu(), mask.cpu(), strict=True):
            text = tokenizer.decode(resp[m.bool()].tolist(), skip_special_tokens=True)
            truth = rec["reward_model"]["ground_truth"]
            out.append(
                compute_score(str(rec.get("data_source", "")), text, str(truth), rec.get("extra_info"))
            )
        return torch.tensor(out)

    description = {"data": str(path), "prompts_available": len(keep), "rewards": "math reward (verl backend)"}
    return PromptSource(description, draw, score, eos_id, max_new_tokens)


def collect_batches(
    policy: nn.Module,
    source: PromptSource,
    *,
    batches: int,
    prompts: int,
    group_size: int,
    temperature: float,
    method: str,
    knobs: dict[str, Any],
    generator: torch.Generator,
    coin_flips: bool = False,
    device: torch.device | str = "cpu",
    warn: Callable[[str], None] = lambda _msg: None,
    progress: Callable[[], None] = lambda: None,
    sample: SampleFn | None = None,
) -> tuple[list[RolloutBatch], str]:
    """``batches`` rollout batches of ``prompts`` × ``group_size``, and how they were rewarded."""
    use_verifier = source.score is not None and not coin_flips

    def draw_all(reward: Callable[[list[Any]], RewardFn]) -> list[RolloutBatch]:
        out = []
        for _ in range(batches):
            ids, records = source.draw(prompts, generator)
            expanded = [r for r in records for _ in range(group_size)]
            out.append(
                make_batch(
                    policy,
                    ids.to(device),
                    group_size,
                    source.max_new_tokens,
                    temperature,
                    source.eos_id,
                    reward(expanded),
                    method,
                    generator,
                    knobs,
                    sample,
                )
            )
            progress()
        return out

    flips = coin_flip_rewards(generator)
    if not use_verifier:
        return draw_all(lambda _records: flips), "coin flips" if source.score else "coin flips (no verifier)"
    score = source.score
    assert score is not None

    def verifier(records: list[Any]) -> RewardFn:
        return lambda _reps, responses, mask: score(records, responses, mask)

    rollouts = draw_all(verifier)
    if all(bool((b.advantages == 0).all()) for b in rollouts):
        warn(
            "the verifier gave no group any reward variance (every advantage is 0); using coin-flip rewards "
            "instead (pass --rewards random to choose this explicitly)"
        )
        return draw_all(lambda _records: flips), "coin flips (verifier rewards had no variance)"
    return rollouts, str(source.description.get("rewards", "verifier"))
