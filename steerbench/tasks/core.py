"""Synthetic tasks with exact verifiers for the embedded backend, and their shared char-level tokenizer.

Every task gives fixed-length prompts (BOS + zero-padded text), so a batch of prompts is a plain
(B, P) tensor, and a verifier that returns exactly 1.0 or 0.0. (The text tasks of a Hugging Face model,
``text_tasks.py``, fit the same ``Task`` protocol with prompts of different lengths, left-padded.)

Entropy collapse must actually happen under GRPO on the default testbed, so the supervised warm-start
targets (`sft_example`) are deliberately noisy: correct only with probability `p_correct`, otherwise a
plausible wrong answer (a dropped carry, an off-by-one digit, a wrong expression over the same numbers).
Imitating them leaves the policy with real token entropy and partial accuracy; RL on the verifiable
reward then sharpens it. `countdown` additionally has many correct answers (commuted and re-bracketed
expressions), so GRPO can also collapse onto one solution form.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import torch

from steerbench.errors import UsageError
from steerbench.tasks.chat import left_pad


class Tokenizer:
    """Char-level: ids 0/1/2 are PAD/BOS/EOS, then one id per character of `CHARS`."""

    CHARS = "0123456789+-*=(),:"
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self) -> None:
        self._id = {c: i + 3 for i, c in enumerate(self.CHARS)}
        self.vocab_size = len(self.CHARS) + 3

    def encode(self, text: str) -> list[int]:
        try:
            return [self._id[c] for c in text]
        except KeyError as err:
            raise UsageError(f"character {err.args[0]!r} is not in the task alphabet {self.CHARS!r}") from err

    def render(self, text: str, generator: torch.Generator) -> list[int]:
        """The spelling of a warm-start target: here the only one, `encode(text)` (draws nothing)."""
        return self.encode(text)

    def decode(self, ids: list[int]) -> str:
        """Text up to (not including) the first EOS; PAD and BOS are skipped.

        Ids past the alphabet (a Hugging Face policy with a larger vocabulary) decode to U+FFFD, which
        no verifier accepts.
        """
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i >= 3:
                out.append(self.CHARS[i - 3] if i - 3 < len(self.CHARS) else "\ufffd")
        return "".join(out)


TOKENIZER = Tokenizer()


@dataclass(frozen=True)
class Problem:
    prompt: str  # prompt text without BOS, e.g. "347+918="
    answer: str  # a reference correct response, e.g. "1265"
    prompt_ids: list[int]  # BOS + encode(prompt); the same length for every problem of a task


class Task(Protocol):
    name: str

    @property
    def tokenizer(self) -> Tokenizer: ...  # ids ↔ text; the model's vocabulary is its vocab_size

    @property
    def prompt_len(self) -> int: ...

    @property
    def max_response_len(self) -> int: ...  # response tokens including EOS

    def sample_problems(self, n: int, generator: torch.Generator) -> list[Problem]: ...

    def verify(self, problem: Problem, response_text: str) -> float: ...

    def sft_example(self, problem: Problem, generator: torch.Generator) -> str: ...


def _rng(generator: torch.Generator) -> random.Random:
    """A Python RNG seeded from (and advancing) the torch generator, so tasks stay seed-deterministic."""
    return random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))


def _check_p(p_correct: float) -> None:
    if not 0.0 <= p_correct <= 1.0:
        raise UsageError(f"p_correct must be in [0, 1], got {p_correct}")


@dataclass
class AddTask:
    """Multi-digit addition: "0347+0918=" → "1265" (answer without leading zeros).

    `reverse=True` writes the answer least-significant digit first ("5621"), the order in which a
    left-to-right decoder can carry; small models learn it far faster.
    """

    digits: int = 3  # operand width; difficulty
    reverse: bool = False  # answer digits least-significant first
    p_correct: float = 0.5  # probability a warm-start target is correct
    name: str = dataclasses.field(default="add", init=False)
    tokenizer = TOKENIZER

    def __post_init__(self) -> None:
        _check_p(self.p_correct)
        if not 1 <= self.digits <= 8:
            raise UsageError(f"add: digits must be in 1..8, got {self.digits}")

    @property
    def prompt_len(self) -> int:
        return 1 + 2 * self.digits + 2

    @property
    def max_response_len(self) -> int:
        return self.digits + 2

    def sample_problems(self, n: int, generator: torch.Generator) -> list[Problem]:
        rng, hi = _rng(generator), 10**self.digits - 1
        out = []
        for _ in range(n):
            a, b = rng.randint(0, hi), rng.randint(0, hi)
            prompt = f"{a:0{self.digits}d}+{b:0{self.digits}d}="
            out.append(Problem(prompt, self._render(a + b), [TOKENIZER.bos_id, *TOKENIZER.encode(prompt)]))
        return out

    def _render(self, value: int) -> str:
        return str(value)[::-1] if self.reverse else str(value)

    def verify(self, problem: Problem, response_text: str) -> float:
        return float(response_text == problem.answer)

    def sft_example(self, problem: Problem, generator: torch.Generator) -> str:
        """Correct with probability p_correct, else one typical slip (dropped carry, last digit ±1,
        one wrong digit), re-drawn until it differs from the answer."""
        rng = _rng(generator)
        if rng.random() < self.p_correct:
            return problem.answer
        a, b = (int(x) for x in problem.prompt[:-1].split("+"))
        carry_cols = [c for c in range(self.digits) if a // 10**c % 10 + b // 10**c % 10 >= 10]
        while True:
            kind = rng.randrange(3)
            if kind == 0 and carry_cols:  # forget the carry out of one column
                wrong = a + b - 10 ** (rng.choice(carry_cols) + 1)
            elif kind == 1:
                wrong = a + b + rng.choice((-1, 1))
            else:  # one digit of the answer replaced
                s = list(str(a + b))
                s[rng.randrange(len(s))] = str(rng.randrange(10))
                wrong = int("".join(s))
            if wrong >= 0 and wrong != a + b:
                return self._render(wrong)


# --- countdown: reach a target from the given numbers with + - * and brackets ----------------------

_PREC = {"+": 1, "-": 1, "*": 2}


def _trees(nums: tuple[int, ...]) -> Iterator[tuple[str, int, int]]:
    """All expressions over `nums` in this order: (text with minimal brackets, value, precedence)."""
    if len(nums) == 1:
        yield str(nums[0]), nums[0], 3
        return
    for split in range(1, len(nums)):
        for lt, lv, lp in _trees(nums[:split]):
            for rt, rv, rp in _trees(nums[split:]):
                for op, prec in _PREC.items():
                    left = f"({lt})" if lp < prec else lt
                    # a−(b±c) and a*(b*c) keep brackets only where dropping them changes the value
                    right = f"({rt})" if rp < prec or (rp == prec and op == "-") else rt
                    value = lv + rv if op == "+" else lv - rv if op == "-" else lv * rv
                    yield f"{left}{op}{right}", value, prec


@lru_cache(maxsize=4096)
def _expressions(nums: tuple[int, ...]) -> dict[int, tuple[str, ...]]:
    """value → every distinct expression text using each number in `nums` exactly once."""
    by_value: dict[int, set[str]] = {}
    for perm in set(itertools.permutations(nums)):
        for text, value, _ in _trees(perm):
            by_value.setdefault(value, set()).add(text)
    return {v: tuple(sorted(s)) for v, s in by_value.items()}


def evaluate_expression(text: str) -> tuple[int, list[int]]:
    """Value and numbers of an arithmetic expression over non-negative integers, + - *, brackets.

    A recursive-descent parser (expr := term (± term)*, term := factor (* factor)*, factor := int |
    '(' expr ')'); anything else raises ValueError. Nothing is ever passed to eval.
    """
    if len(text) > 64:
        raise ValueError("expression too long")
    pos, numbers = 0, []

    def peek() -> str:
        return text[pos] if pos < len(text) else ""

    def factor() -> int:
        nonlocal pos
        if peek() == "(":
            pos += 1
            value = expr()
            if peek() != ")":
                raise ValueError(f"expected ')' at {pos}")
            pos += 1
            return value
        start = pos
        while pos < len(text) and text[pos] in "0123456789":
            pos += 1
        if start == pos:
            raise ValueError(f"expected a number at {pos}")
        numbers.append(int(text[start:pos]))
        return numbers[-1]

    def binary(operand: Callable[[], int], ops: str) -> int:
        nonlocal pos
        value = operand()
        while peek() and peek() in ops:
            op = peek()
            pos += 1
            rhs = operand()
            value = value + rhs if op == "+" else value - rhs if op == "-" else value * rhs
        return value

    def term() -> int:
        return binary(factor, "*")

    def expr() -> int:
        return binary(term, "+-")

    value = expr()
    if pos != len(text):
        raise ValueError(f"unexpected {text[pos]!r} at {pos}")
    return value, numbers


@dataclass
class CountdownTask:
    """Reach a target from `n_numbers` numbers in 1..max_number, each used exactly once, with + - * ( ).

    Prompt "07,03,05:026=" (numbers, target, zero-padded); many responses are correct ("7*3+5",
    "5+3*7", ...). The verifier parses the response safely and checks numbers and value.
    """

    n_numbers: int = 3  # numbers per problem; difficulty
    max_number: int = 9  # numbers are drawn from 1..max_number (≤ 99); difficulty
    p_correct: float = 0.5  # probability a warm-start target is correct
    name: str = dataclasses.field(default="countdown", init=False)
    tokenizer = TOKENIZER

    def __post_init__(self) -> None:
        _check_p(self.p_correct)
        if not 2 <= self.n_numbers <= 4 or not 1 <= self.max_number <= 99:
            raise UsageError(
                f"countdown: n_numbers must be in 2..4 and max_number in 1..99, "
                f"got n_numbers={self.n_numbers}, max_number={self.max_number}"
            )

    @property
    def prompt_len(self) -> int:
        return 3 * self.n_numbers + 5  # BOS, 2-digit numbers and commas, ':', 3-digit target, '='

    @property
    def max_response_len(self) -> int:
        # 2-digit numbers, n−1 operators, at most n−2 bracket pairs (the root needs none), EOS
        return 2 * self.n_numbers + (self.n_numbers - 1) + 2 * (self.n_numbers - 2) + 1

    def sample_problems(self, n: int, generator: torch.Generator) -> list[Problem]:
        rng, out = _rng(generator), list[Problem]()
        while len(out) < n:
            nums = tuple(rng.randint(1, self.max_number) for _ in range(self.n_numbers))
            reachable = sorted(v for v in _expressions(nums) if 0 <= v <= 999)
            target = rng.choice(reachable)
            prompt = ",".join(f"{x:02d}" for x in nums) + f":{target:03d}="
            answer = rng.choice(_expressions(nums)[target])
            out.append(Problem(prompt, answer, [TOKENIZER.bos_id, *TOKENIZER.encode(prompt)]))
        return out

    @staticmethod
    def _parse_prompt(problem: Problem) -> tuple[tuple[int, ...], int]:
        nums, target = problem.prompt[:-1].split(":")
        return tuple(int(x) for x in nums.split(",")), int(target)

    def verify(self, problem: Problem, response_text: str) -> float:
        nums, target = self._parse_prompt(problem)
        try:
            value, used = evaluate_expression(response_text)
        except ValueError:
            return 0.0
        return float(value == target and sorted(used) == sorted(nums))

    def sft_example(self, problem: Problem, generator: torch.Generator) -> str:
        """A uniformly chosen correct expression with probability p_correct, else a wrong one."""
        rng = _rng(generator)
        nums, target = self._parse_prompt(problem)
        by_value = _expressions(nums)
        wrong = [v for v in by_value if v != target]
        value = target if rng.random() < self.p_correct or not wrong else rng.choice(wrong)
        return rng.choice(by_value[value])


def task_params(task: Task) -> dict[str, Any]:
    """The task's name and knobs (for config hashing and run records)."""
    return dataclasses.asdict(task)  # type: ignore[call-overload]


def prompt_tensor(problems: list[Problem], pad_id: int = TOKENIZER.pad_id) -> torch.Tensor:
    """(B, P) long tensor of the problems' prompt ids, LEFT-padded with ``pad_id`` to the longest (a text
    task's prompts differ in length; a synthetic task's never do, so they are never padded)."""
    return left_pad([p.prompt_ids for p in problems], pad_id)


def score(task: Task, problems: list[Problem], responses: torch.Tensor) -> torch.Tensor:
    """(B,) float rewards: verify each decoded response row (B, T) against its problem."""
    texts = (task.tokenizer.decode(row) for row in responses.tolist())
    return torch.tensor([task.verify(p, t) for p, t in zip(problems, texts, strict=True)])
