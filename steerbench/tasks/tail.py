"""The long-tail task suite: a 256-token vocabulary where one text has many spellings, and its tasks.

Why: on the 21-token char vocabulary every correct answer has one spelling, so the mechanisms under
study (STEER's weighting of low-probability tokens, Clip-Cov's covariance outliers) have no tail to act
on. Here, as in a real BPE vocabulary, the same answer text can be written many ways:

- merged tokens: every digit pair ("37"), digit+operator ("7*", "*3"), "=d", "d=", "(d", "d)";
- variant forms of one symbol: fullwidth digits "７", "×"/"x" for "*", "−" for "-", "＋", "[" "]";
- a space (the verifiers ignore whitespace) and junk characters ("?", "a", ...) that no answer contains.

`decode` maps every id to its canonical meaning, so a verifier sees plain text ("７×３" → "7*3").
The warm start's targets are spelled by `TailTokenizer.render`: at each position the matching tokens are
ranked (longest merge first, then the plain character, then its variants) and rank r is drawn with
weight 1/(r+1)², so the canonical spelling dominates and every variant stays in the tail — correct
tokens with low probability. Noisy targets also carry a stray space or a junk character now and then.

Tasks (both have several correct answers; verifiers ignore spaces):
- `countdown_tail`: `CountdownTask` over this vocabulary.
- `steps`: evaluate a bracketed 3-number expression "(7+3)*5=", showing work or not: every response
  "e1=e2=...=v" whose expressions all equal the value, ending in the plain number v, is correct
  ("50", "10*5=50", "5*10=50", "7*5+3*5=50").
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import torch

from steerbench.errors import UsageError
from steerbench.tasks.core import (
    TOKENIZER,
    CountdownTask,
    Problem,
    Tokenizer,
    _check_p,
    _rng,
    evaluate_expression,
)

DIGITS = "0123456789"
VARIANTS = {d: chr(0xFF10 + int(d)) for d in DIGITS}  # fullwidth digits
SYMBOL_VARIANTS = [("*", "×"), ("*", "x"), ("-", "−"), ("+", "＋"), ("(", "["), (")", "]")]
SPACE = " "
JUNK = "?!#abcdefghijklmno"


class TailTokenizer(Tokenizer):
    """PAD/BOS/EOS, the 18 plain characters (the same ids as the char tokenizer), then the tail.

    `encode` (prompts) is the char tokenizer's plain spelling; `render` and `decode` know the tail.
    """

    def __init__(self) -> None:
        super().__init__()
        surfaces = ["<pad>", "<bos>", "<eos>", *TOKENIZER.CHARS]
        meanings = ["", "", "", *TOKENIZER.CHARS]
        merges = [a + b for a in DIGITS for b in DIGITS]
        merges += [d + op for d in DIGITS for op in "+-*=)"] + [op + d for op in "+-*=(" for d in DIGITS]
        surfaces += merges
        meanings += merges
        for d, v in VARIANTS.items():
            surfaces.append(v)
            meanings.append(d)
        for plain, v in SYMBOL_VARIANTS:
            surfaces.append(v)
            meanings.append(plain)
        surfaces += [SPACE, *JUNK]
        meanings += [SPACE, *JUNK]
        self.surfaces, self.meanings = surfaces, meanings
        self.vocab_size = len(surfaces)
        # spellings of a text piece, canonical first: merges (tokens of 2 chars) before singles, then ids
        self._spellings: dict[str, list[int]] = {}
        for i in range(3, self.vocab_size):
            self._spellings.setdefault(meanings[i], []).append(i)

    def decode(self, ids: list[int]) -> str:
        """Canonical text up to (not including) the first EOS; PAD and BOS are skipped; ids past the
        vocabulary decode to U+FFFD, which no verifier accepts."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            out.append(self.meanings[i] if i < self.vocab_size else "\ufffd")
        return "".join(out)

    def spellings(self, text: str, pos: int) -> list[int]:
        """Token ids that can spell `text` at `pos`, ranked: 2-char merges, then the plain char, variants."""
        merged = self._spellings.get(text[pos : pos + 2], []) if pos + 2 <= len(text) else []
        return merged + self._spellings.get(text[pos], [])

    def render(self, text: str, generator: torch.Generator) -> list[int]:
        """One spelling of `text`: at each position rank r of `spellings` is drawn with weight 1/(r+1)²."""
        rng, out, pos = _rng(generator), [], 0
        while pos < len(text):
            ranked = self.spellings(text, pos)
            if not ranked:
                raise UsageError(f"character {text[pos]!r} has no token in the tail vocabulary")
            token = rng.choices(ranked, weights=[1 / (r + 1) ** 2 for r in range(len(ranked))])[0]
            out.append(token)
            pos += len(self.meanings[token])
        return out


TAIL_TOKENIZER = TailTokenizer()


def _stray(text: str, rng: random.Random, p_space: float, p_junk: float) -> str:
    """`text` with a space (harmless) inserted with probability p_space and a junk character (which
    makes it wrong) with probability p_junk, each at a uniform position."""
    for p, alphabet in ((p_space, SPACE), (p_junk, JUNK)):
        if rng.random() < p:
            at = rng.randint(0, len(text))
            text = text[:at] + rng.choice(alphabet) + text[at:]
    return text


@dataclass
class TailCountdownTask(CountdownTask):
    """Countdown (see `CountdownTask`) spelled in the tail vocabulary; targets may carry a stray
    space (still correct) or junk character (wrong)."""

    p_space: float = 0.1  # probability a warm-start target carries a space
    p_junk: float = 0.05  # probability a warm-start target carries a junk character
    name: str = dataclasses.field(default="countdown_tail", init=False)
    tokenizer = TAIL_TOKENIZER

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_p(self.p_space)
        _check_p(self.p_junk)

    @property
    def max_response_len(self) -> int:
        return super().max_response_len + 2  # a stray space and a junk character

    def verify(self, problem: Problem, response_text: str) -> float:
        return super().verify(problem, response_text.replace(SPACE, ""))

    def sft_example(self, problem: Problem, generator: torch.Generator) -> str:
        text = super().sft_example(problem, generator)
        return _stray(text, _rng(generator), self.p_space, self.p_junk)


_OPS = "+-*"


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


@dataclass
class StepsTask:
    """Multi-step arithmetic: "(7+3)*5=" → "50", or with work shown, "10*5=50", "5*10=50", ...

    A response is a chain e1=e2=...=ek: correct iff every ei parses (+ - * brackets, non-negative
    integers), every ei equals the prompt's value, ek is a plain number, and k ≤ 3. Prompts are
    "(a∘b)∘c=" or "a∘(b∘c)=" over digits 1..max_number with a non-negative inner and final value.
    Warm-start targets are correct with probability p_correct (direct, one step, or the step commuted);
    otherwise one slip: the inner value off by one carried through, the final value off by one, or the
    brackets ignored (left-to-right precedence).
    """

    max_number: int = 9  # operands are drawn from 1..max_number (≤ 9: prompts are single digits)
    p_correct: float = 0.5  # probability a warm-start target is correct
    p_space: float = 0.1  # probability a warm-start target carries a space
    p_junk: float = 0.05  # probability a warm-start target carries a junk character
    name: str = dataclasses.field(default="steps", init=False)
    tokenizer = TAIL_TOKENIZER

    def __post_init__(self) -> None:
        for p in (self.p_correct, self.p_space, self.p_junk):
            _check_p(p)
        if not 1 <= self.max_number <= 9:
            raise UsageError(f"steps: max_number must be in 1..9, got {self.max_number}")

    @property
    def prompt_len(self) -> int:
        return 1 + 8  # BOS + "(a∘b)∘c="

    @property
    def max_response_len(self) -> int:
        # "81*9=729" (inner ≤ 81, 2-char step operand), a space, a junk character, EOS
        return 8 + 2 + 1

    def sample_problems(self, n: int, generator: torch.Generator) -> list[Problem]:
        rng, out = _rng(generator), list[Problem]()
        while len(out) < n:
            a, b, c = (rng.randint(1, self.max_number) for _ in range(3))
            outer, inner = rng.choice(_OPS), rng.choice(_OPS)
            left = rng.random() < 0.5  # brackets around the first pair
            x, y, z = (a, b, c) if left else (b, c, a)
            value_inner = _apply(inner, x, y)
            value = _apply(outer, value_inner, z) if left else _apply(outer, z, value_inner)
            if value_inner < 0 or value < 0:
                continue
            prompt = f"({a}{inner}{b}){outer}{c}=" if left else f"{a}{outer}({b}{inner}{c})="
            out.append(Problem(prompt, str(value), [TOKENIZER.bos_id, *TOKENIZER.encode(prompt)]))
        return out

    @staticmethod
    def _value(problem: Problem) -> int:
        return evaluate_expression(problem.prompt[:-1])[0]

    def verify(self, problem: Problem, response_text: str) -> float:
        parts = response_text.replace(SPACE, "").split("=")
        if len(parts) > 3 or not parts[-1].isdigit():
            return 0.0
        target = self._value(problem)
        try:
            return float(all(evaluate_expression(p)[0] == target for p in parts))
        except ValueError:
            return 0.0

    def _step(self, problem: Problem, rng: random.Random, inner_slip: int = 0) -> tuple[str, int]:
        """The prompt with its bracket evaluated ("10*5", or commuted "5*10") and that text's value."""
        text = problem.prompt[:-1]
        open_, close = text.index("("), text.index(")")
        inner = str(abs(evaluate_expression(text[open_ + 1 : close])[0] + inner_slip))
        rest = text[:open_], text[close + 1 :]
        op = (rest[1] or rest[0])[0 if rest[1] else -1]
        operand = rest[1][1:] if rest[1] else rest[0][:-1]
        pair = (inner, operand) if rest[1] else (operand, inner)
        if op in "+*" and rng.random() < 0.5:
            pair = pair[::-1]
        step = f"{pair[0]}{op}{pair[1]}"
        return step, evaluate_expression(step)[0]

    def sft_example(self, problem: Problem, generator: torch.Generator) -> str:
        rng = _rng(generator)
        value = self._value(problem)
        if rng.random() < self.p_correct:
            text = str(value) if rng.random() < 0.5 else f"{self._step(problem, rng)[0]}={value}"
        else:
            text = self._slip(problem, rng, value)
        return _stray(text, rng, self.p_space, self.p_junk)

    def _slip(self, problem: Problem, rng: random.Random, value: int) -> str:
        """A wrong response: inner value off by one (carried through), final ±1, or brackets ignored."""
        while True:
            kind = rng.randrange(3)
            if kind == 0:
                step, wrong = self._step(problem, rng, inner_slip=rng.choice((-1, 1)))
                text = f"{step}={wrong}"
            elif kind == 1:
                wrong = value + rng.choice((-1, 1))
                text = str(wrong)
            else:
                wrong = evaluate_expression(problem.prompt[:-1].replace("(", "").replace(")", ""))[0]
                text = str(wrong)
            if wrong >= 0 and wrong != value:
                return text
