"""Rewards shared by both backends and validate-omega: coin flips, and the math reward of verl-format data.

:func:`coin_flips` is the ``random_reward`` scenario's reward wherever a generator drives the draws (the
embedded trainer, in-training Ω, validate-omega). verl's reward workers are stateless, so there a coin
flip is a hash of (seed, prompt index, response) instead (``random_reward_sources`` below).

One verifiable math reward for every shared verl-format dataset (DAPO-Math-17k, AIME24/25, AMC23,
MATH-500, Minerva, OlympiadBench, GSM8K, Omni-MATH), for verl's ``reward.custom_reward_function``.

Extraction (on the response only): the last ``\\boxed{...}`` (balanced braces, also ``\\fbox``), else the
text after the last ``Answer:``. No extractable answer is wrong. Comparison: exact match after light
normalisation, else ``math_verify`` (symbolic/numeric equivalence) with its timeouts off, because verl's
reward loop runs scorers in a thread pool where signal-based timeouts cannot work.

Scores: ``+1.0`` correct, ``-1.0`` wrong, as the STEER release (and verl's ``math_dapo``) do; pass
``incorrect_score=0.0`` (``reward_kwargs``) for 0/1. verl's ``val-core/<ds>/acc/mean@N`` needs an ``acc``
field, so the launcher selects :func:`compute_score_with_acc`, which returns ``{"score", "acc"}``; acc is
0/1 whatever the score scale.

``steerbench/<task>`` rows (``steerbench data prepare``): the boxed answer is checked by the embedded
task's own verifier, the problem rebuilt from ``extra_info.raw_problem`` (countdown has many correct
expressions, so comparing with the one reference answer would be wrong).

``random_reward_sources`` (the ``random_reward`` scenario): for rows whose ``data_source`` is listed
(the training set's), the score is a deterministic coin flip of (seed, prompt index, response); other
data sources (validation) keep their true score.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from steerbench.math_answer import extract_answer, is_equivalent
from steerbench.tasks.registry import DATA_SOURCE_PREFIX, problem_from_row


def coin_flips(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) float32 fair 0/1 rewards drawn from ``generator``."""
    return torch.bernoulli(torch.full((n,), 0.5), generator=generator)


def _coin(seed: int, *parts: Any) -> bool:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return bool(digest[0] & 1)


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **knobs: Any
) -> float:
    """+1.0 if the response's final answer equals ``ground_truth``, else ``incorrect_score`` (−1.0).

    The score of :func:`compute_score_with_acc`, which takes ``knobs`` (``incorrect_score``,
    ``random_reward_sources``, ``seed``)."""
    return compute_score_with_acc(data_source, solution_str, ground_truth, extra_info, **knobs)["score"]


def compute_score_with_acc(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    incorrect_score: float = -1.0,
    random_reward_sources: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    **_: Any,
) -> dict[str, float]:
    """``score`` (+1.0 correct, else ``incorrect_score``) and ``acc`` (0/1), so verl logs
    ``val-core/<ds>/acc/mean@N`` as accuracy."""
    if random_reward_sources and data_source in set(random_reward_sources):
        index = (extra_info or {}).get("index") if isinstance(extra_info, dict) else None
        correct = _coin(int(seed), data_source, index, solution_str)
    elif str(data_source).startswith(DATA_SOURCE_PREFIX):  # `steerbench data prepare` rows: task's verifier
        pred = extract_answer(solution_str or "")
        task, problem = problem_from_row(data_source, ground_truth, extra_info)
        correct = pred is not None and task.verify(problem, pred) == 1.0
    else:
        pred = extract_answer(solution_str or "")
        correct = pred is not None and is_equivalent(pred, str(ground_truth))
    return {"score": 1.0 if correct else float(incorrect_score), "acc": float(correct)}
