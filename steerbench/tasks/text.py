"""Text tasks: a pretrained Hugging Face LM trained on chat prompts in its own tokenizer, scored by the math reward.

Two prompt sources, each a typed knob dataclass that ``bind`` s to the model's tokenizer:

* ``text``        rows of a verl-format parquet file (``task.data``), e.g. ../shared/datasets/gsm8k_test.parquet;
* ``arith_text``  a + b with ``shots`` solved examples before the question, so that a small instruct model
                  answers in the "Answer: N" form the reward parses (SmolLM2-135M-Instruct solves about 40%
                  of the 1-digit ones: groups with reward variance, so the verifier, not chance, drives the step).

Every prompt is the chat messages rendered by the model's chat template with the generation prompt
(``steerbench.tasks.chat.prompt_ids``); prompts differ in length, so the trainer left-pads them
(``prompt_tensor``) and the policy masks the pads. A response is decoded up to its first EOS and scored 0/1
by ``steerbench.math_answer`` (the verl backend's math reward: last ``\\boxed{}`` or ``Answer:``, exact or
math-verify equivalence), as the tiny tasks' verifiers give.

Validation prompts (``val/pass@k``) are drawn from the same source with the trainer's fixed evaluation seed.
There is no supervised warm start: the model is already pretrained.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steerbench.errors import UsageError
from steerbench.math_answer import extract_answer, is_equivalent
from steerbench.tasks.chat import load_hf_tokenizer, prompt_ids, read_verl_parquet
from steerbench.tasks.core import Problem, _rng

SHOTS = ((2, 3), (7, 1), (4, 4))  # arith_text's solved examples, in order


class TextTokenizer:
    """A Hugging Face tokenizer through the embedded tasks' tokenizer interface (ids ↔ text, special ids)."""

    def __init__(self, hf: Any, pad_id: int, eos_id: int) -> None:
        self.hf = hf
        self.pad_id, self.eos_id = pad_id, eos_id
        self.vocab_size = len(hf)

    def decode(self, ids: list[int]) -> str:
        """Text up to (not including) the first EOS, special tokens skipped."""
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return str(self.hf.decode(ids, skip_special_tokens=True))


@dataclass(frozen=True)
class TextProblem(Problem):
    data_source: str = ""  # the row's data_source: selects the reward's verifier (steerbench/<task> rows)
    extra_info: dict[str, Any] | None = (
        None  # the row's extra_info (steerbench/<task> rows rebuild the problem)
    )


@dataclass
class TextTask:
    """A text task bound to a model's tokenizer; fits the ``Task`` protocol the trainer drives."""

    name: str
    tokenizer: TextTokenizer
    draw: Callable[[int, random.Random], list[TextProblem]]  # n problems from a seeded Python RNG
    max_response_len: int  # new tokens per response, EOS included
    prompt_len: int  # a bound on prompt tokens (informational: a batch is left-padded to its longest prompt)

    def sample_problems(self, n: int, generator: torch.Generator) -> list[Problem]:
        return list(self.draw(n, _rng(generator)))

    def verify(self, problem: Problem, response_text: str) -> float:
        """1.0 if the response's final answer (``math_answer``) equals the reference, else 0.0."""
        pred = extract_answer(response_text)
        return float(pred is not None and is_equivalent(pred, problem.answer))

    def sft_example(self, problem: Problem, generator: torch.Generator) -> str:
        raise UsageError(f"task {self.name} trains a pretrained model as it is: it has no warm start")


@dataclass
class ParquetText:
    """Prompts from a verl-format parquet file (``prompt`` chat messages, ``reward_model.ground_truth``)."""

    data: str | None = None  # the parquet file (required), e.g. ../shared/datasets/gsm8k_test.parquet
    max_prompt_tokens: int = 512  # longer prompts are skipped
    max_new_tokens: int = 256  # response tokens, EOS included
    name: str = dataclasses.field(default="text", init=False)

    def bind(self, tokenizer: TextTokenizer) -> TextTask:
        _check_lengths(self.name, self.max_prompt_tokens, self.max_new_tokens)
        if not self.data:
            raise UsageError(
                "task=text reads its prompts from a verl-format parquet file: pass task.data=FILE.parquet "
                "(e.g. ../shared/datasets/gsm8k_test.parquet), or use task=arith_text"
            )
        rows = read_verl_parquet(self.data, flag="task.data")
        encoded: dict[int, list[int]] = {}  # row → prompt ids, rendered when first drawn

        def ids(i: int) -> list[int]:
            if i not in encoded:
                encoded[i] = prompt_ids(tokenizer.hf, rows[i]["prompt"])
            return encoded[i]

        def draw(n: int, rng: random.Random) -> list[TextProblem]:
            # rows in a seeded random order, too-long prompts skipped: rendering every row up front would
            # cost seconds on a 17k-row file at each start
            fitting = (
                i for i in rng.sample(range(len(rows)), len(rows)) if len(ids(i)) <= self.max_prompt_tokens
            )
            picks = [i for i, _ in zip(fitting, range(n), strict=False)]
            if len(picks) < n:
                raise UsageError(
                    f"{n} prompts were asked for but {self.data!r} has only {len(picks)} of at most "
                    f"task.max_prompt_tokens={self.max_prompt_tokens} tokens; raise it or ask for fewer"
                )
            return [_problem(rows[i], ids(i)) for i in picks]

        return TextTask(self.name, tokenizer, draw, self.max_new_tokens, self.max_prompt_tokens)


@dataclass
class ArithText:
    """a + b with a, b uniform in 0..10^digits − 1, asked after ``shots`` solved examples."""

    digits: int = 1  # operand width; difficulty
    shots: int = 3  # solved examples before the question (0..3)
    max_new_tokens: int = 16  # response tokens, EOS included ("Answer: 12" is 4–5 tokens)
    name: str = dataclasses.field(default="arith_text", init=False)

    def bind(self, tokenizer: TextTokenizer) -> TextTask:
        _check_lengths(self.name, 1, self.max_new_tokens)
        if not 1 <= self.digits <= 8 or not 0 <= self.shots <= len(SHOTS):
            raise UsageError(
                f"arith_text: digits must be in 1..8 and shots in 0..{len(SHOTS)}, "
                f"got digits={self.digits}, shots={self.shots}"
            )

        def draw(n: int, rng: random.Random) -> list[TextProblem]:
            hi, out = 10**self.digits - 1, []
            for _ in range(n):
                a, b = rng.randint(0, hi), rng.randint(0, hi)
                messages = arith_messages(a, b, self.shots)
                row = {
                    "prompt": messages,
                    "data_source": self.name,
                    "reward_model": {"ground_truth": str(a + b)},
                }
                out.append(_problem(row, prompt_ids(tokenizer.hf, messages)))
            return out

        widest = prompt_ids(
            tokenizer.hf, arith_messages(10**self.digits - 1, 10**self.digits - 1, self.shots)
        )
        return TextTask(self.name, tokenizer, draw, self.max_new_tokens, len(widest))


def arith_user(a: int, b: int) -> str:
    return f"What is {a} + {b}? Reply with one line: Answer: <number>"


def arith_messages(a: int, b: int, shots: int = len(SHOTS)) -> list[dict[str, str]]:
    """The chat: ``shots`` solved examples (user question, assistant "Answer: N"), then the question."""
    messages = []
    for x, y in SHOTS[:shots]:
        messages += [
            {"role": "user", "content": arith_user(x, y)},
            {"role": "assistant", "content": f"Answer: {x + y}"},
        ]
    return [*messages, {"role": "user", "content": arith_user(a, b)}]


def _problem(row: dict[str, Any], ids: list[int]) -> TextProblem:
    """A verl-format row as a problem: the last message as its text, the ground truth as its answer."""
    extra = row.get("extra_info")
    if str(row.get("data_source", "")).startswith("steerbench/"):
        raise UsageError(
            f"a text task scores answers against the reference; {row['data_source']} rows need their own "
            "verifier: train them with the embedded task itself (--task <name>), or on verl"
        )
    return TextProblem(
        prompt=str(list(row["prompt"])[-1]["content"]),
        answer=str(row["reward_model"]["ground_truth"]),
        prompt_ids=list(ids),
        data_source=str(row.get("data_source", "")),
        extra_info=dict(extra) if isinstance(extra, dict) else None,
    )


def _check_lengths(name: str, max_prompt_tokens: int, max_new_tokens: int) -> None:
    if max_prompt_tokens < 1 or max_new_tokens < 1:
        raise UsageError(
            f"{name}: max_prompt_tokens and max_new_tokens must be ≥ 1, "
            f"got {max_prompt_tokens} and {max_new_tokens}"
        )


TEXT_TASKS: dict[str, type[ParquetText] | type[ArithText]] = {"text": ParquetText, "arith_text": ArithText}


def load_text_tokenizer(task: str, model_path: str | Path | None) -> TextTokenizer:
    """The tokenizer saved beside the model, checked for what a text task needs (a chat template, an EOS)."""
    if not model_path:
        raise UsageError(
            f"task={task} renders prompts with a Hugging Face model's own tokenizer and chat template, and the "
            "embedded tiny model has a 21-character vocabulary: pass --model DIR (e.g. the directory "
            "`steerbench model prepare smollm2` prints)"
        )
    for module, extra in (("transformers", "hf"), ("math_verify", "verl")):  # the tokenizer; the math reward
        try:
            __import__(module)
        except ImportError:
            raise UsageError(f"task={task} needs {module}: pip install 'steerbench[{extra}]'") from None
    hf = load_hf_tokenizer(model_path)
    if hf is None:
        raise UsageError(
            f"task={task} needs the model's tokenizer, but {str(model_path)!r} has none (no tokenizer.json)"
        )
    if not getattr(hf, "chat_template", None):
        raise UsageError(
            f"task={task} renders prompts with the model's chat template, but the tokenizer at {str(model_path)!r} "
            "has none (no chat_template in tokenizer_config.json or chat_template.jinja): use an instruct/chat model"
        )
    if hf.eos_token_id is None:
        raise UsageError(f"the tokenizer at {str(model_path)!r} has no EOS token; a response could never end")
    pad = hf.pad_token_id if hf.pad_token_id is not None else hf.eos_token_id
    return TextTokenizer(hf, int(pad), int(hf.eos_token_id))
