"""The final answer of a math response and its equivalence to a reference: no task, no backend, so the
verl reward (``steerbench.rewards``) and the embedded backend's text tasks share it.

Extraction: the last ``\\boxed{...}`` (balanced braces, also ``\\fbox``), else the text after the last
``Answer:``. Comparison: exact match after light normalisation, else ``math_verify`` (symbolic/numeric
equivalence) with its timeouts off, because verl's reward loop runs scorers in a thread pool where
signal-based timeouts cannot work.
"""

from __future__ import annotations

import logging
import re

# math_verify warns on every call that its (signal-based) timeouts are off; that is deliberate here
logging.getLogger("math_verify").setLevel(logging.ERROR)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER = re.compile(r"Answer\s*:\s*", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None."""
    matches = list(_BOXED.finditer(text))
    for m in reversed(matches):
        depth, start = 1, m.end()
        for i in range(start, len(text)):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


def extract_answer(solution: str) -> str | None:
    boxed = last_boxed(solution)
    if boxed is not None:
        return boxed
    matches = list(_ANSWER.finditer(solution))
    if not matches:
        return None
    rest = solution[matches[-1].end() :].strip()
    line = rest.split("\n", 1)[0].strip()
    line = line.strip("$ ").rstrip(".").strip()
    return line or None


def _normalise(s: str) -> str:
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s)
    s = (
        s.replace("\\!", "")
        .replace("\\,", "")
        .replace("\\ ", "")
        .replace("\\left", "")
        .replace("\\right", "")
    )
    s = s.replace("dfrac", "frac").replace("tfrac", "frac").replace("^\\circ", "").replace("^{\\circ}", "")
    s = re.sub(r"\s+", "", s).rstrip(".")
    if re.fullmatch(r"-?[\d,]+(\.\d+)?", s) and "," in s and re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    return s


def is_equivalent(pred: str, ground_truth: str) -> bool:
    if _normalise(pred) == _normalise(ground_truth):
        return True
    try:
        from math_verify import parse, verify
    except ImportError as exc:  # pragma: no cover - declared in the `verl` extra
        raise RuntimeError(
            "steerbench's math reward needs math-verify (`pip install 'steerbench[verl]'`)"
        ) from exc
    try:
        gold = parse(f"${ground_truth}$", parsing_timeout=None)
        target = parse(f"${pred}$", parsing_timeout=None)
        if not gold or not target:
            return False
        return bool(verify(gold, target, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a malformed expression is simply not a match
        return False
