"""The long-tail suite: a ≥256-token vocabulary with many spellings per text, and its verifiers."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from steerbench.errors import UsageError
from steerbench.tasks.core import TOKENIZER, Problem, score
from steerbench.tasks.registry import get_task
from steerbench.tasks.tail import JUNK, TAIL_TOKENIZER, StepsTask, TailCountdownTask

T = TAIL_TOKENIZER
TEXT = st.text(alphabet=TOKENIZER.CHARS + " " + JUNK, max_size=20)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ids_of(*surfaces: str) -> list[int]:
    return [T.surfaces.index(s) for s in surfaces]


def steps_problem(prompt: str) -> Problem:
    return Problem(prompt, "", [T.bos_id, *T.encode(prompt)])


def countdown_problem(nums: tuple[int, ...], target: int) -> Problem:
    prompt = ",".join(f"{x:02d}" for x in nums) + f":{target:03d}="
    return Problem(prompt, "", [T.bos_id, *T.encode(prompt)])


def test_vocabulary_has_256_ids_and_keeps_the_char_ids() -> None:
    assert T.vocab_size >= 256
    assert T.encode("12+3=") == TOKENIZER.encode("12+3=")
    assert (T.pad_id, T.bos_id, T.eos_id) == (TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.eos_id)


def test_variant_and_merged_tokens_decode_to_the_canonical_text() -> None:
    assert T.decode(ids_of("７", "×", "(3", "−", "1", "]")) == "7*(3-1)"
    assert T.decode(ids_of("12", "+3", "=", "1", "5")) == "12+3=15"
    assert T.decode([*ids_of("4", "2"), T.eos_id, *ids_of("9")]) == "42"
    assert T.decode([T.vocab_size + 5]) == "\ufffd"


@settings(max_examples=100, deadline=None)
@given(TEXT, st.integers(0, 2**31))
def test_every_rendering_decodes_back_to_its_text(text: str, seed: int) -> None:
    assert T.decode(T.render(text, gen(seed))) == text


def test_renderings_have_a_long_tail_led_by_the_canonical_spelling() -> None:
    g = gen(1)
    spellings = Counter(tuple(T.render("7*3+5", g)) for _ in range(2000))
    (top, top_n), *rest = spellings.most_common()
    assert top == tuple(ids_of("7*", "3+", "5"))  # greedy longest merges
    assert 0.2 < top_n / 2000 < 0.6 and len(spellings) >= 30  # many rarer spellings of the same text


def test_a_character_outside_the_vocabulary_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="tail vocabulary"):
        T.render("7/3", gen())


@pytest.mark.parametrize(
    "response", ["50", "10*5=50", "5*10=50", "7*5+3*5=50", "(7+3)*5=50", " 50", "10*5 = 50", "050"]
)
def test_steps_accepts_every_correct_chain(response: str) -> None:
    assert StepsTask().verify(steps_problem("(7+3)*5="), response) == 1.0


@pytest.mark.parametrize(
    ("response", "why"),
    [
        ("51", "final off by one"),
        ("49", "final off by one"),
        ("22", "brackets ignored"),
        ("11*5=55", "inner slip carried through"),
        ("11*5=50", "a wrong step"),
        ("10*5", "no final number"),
        ("10*5=50=", "trailing ="),
        ("50=10*5", "ends in an expression"),
        ("5*10=50=50=50", "more than 3 parts"),
        ("5?0", "junk character"),
        ("-50", "sign"),
        ("", "empty"),
    ],
)
def test_steps_rejects_near_misses(response: str, why: str) -> None:
    assert StepsTask().verify(steps_problem("(7+3)*5="), response) == 0.0, why


def test_steps_evaluates_the_bracket_on_either_side() -> None:
    task = StepsTask()
    assert task.verify(steps_problem("9-(2*3)="), "9-6=3") == 1.0
    assert task.verify(steps_problem("9-(2*3)="), "6-9=3") == 0.0  # subtraction does not commute
    assert task.verify(steps_problem("9-(2*3)="), "21") == 0.0  # left to right


@pytest.mark.parametrize("response", ["7*3+5", "5+3*7", "(7*3)+5", " 7*3+5", "7 * 3+5"])
def test_countdown_tail_accepts_every_correct_form_with_spaces(response: str) -> None:
    assert TailCountdownTask().verify(countdown_problem((7, 3, 5), 26), response) == 1.0


@pytest.mark.parametrize("response", ["7*3+6", "7*3", "7+3+5", "7*3+5a", "?7*3+5", "7*3+5+5"])
def test_countdown_tail_rejects_near_misses(response: str) -> None:
    assert TailCountdownTask().verify(countdown_problem((7, 3, 5), 26), response) == 0.0


def test_score_accepts_a_correct_answer_in_any_spelling() -> None:
    task = TailCountdownTask()
    problem = countdown_problem((7, 3, 5), 26)
    rows = [ids_of("７", "×", "3", "+5"), ids_of("7*", "3+", "５"), ids_of("7*", "3+", "５", "a")]
    responses = torch.tensor([[*r, T.eos_id] + [0] * (5 - len(r)) for r in rows])
    assert score(task, [problem] * 3, responses).tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("name", ["countdown_tail", "steps"])
def test_warm_start_targets_carry_spaces_and_junk_at_their_rates(name: str) -> None:
    task, g = get_task(name, p_correct=1.0, p_space=0.3, p_junk=0.2), gen(4)
    problems = task.sample_problems(1000, g)
    texts = [task.sft_example(p, g) for p in problems]
    spaced = sum(" " in t for t in texts) / len(texts)
    junk = sum(any(c in JUNK for c in t) for t in texts) / len(texts)
    correct = sum(task.verify(p, t) for p, t in zip(problems, texts, strict=True)) / len(texts)
    assert abs(spaced - 0.3) < 0.05 and abs(junk - 0.2) < 0.05
    assert abs(correct - 0.8) < 0.05  # spaces are harmless, junk is wrong


def test_steps_targets_have_several_correct_forms() -> None:
    task, g = StepsTask(p_correct=1.0, p_space=0.0, p_junk=0.0), gen(2)
    problem = steps_problem("(7+3)*5=")
    forms = {task.sft_example(problem, g) for _ in range(200)}
    assert forms == {"50", "10*5=50", "5*10=50"}


def test_steps_wrong_targets_are_wrong_but_well_formed() -> None:
    task, g = StepsTask(p_correct=0.0, p_space=0.0, p_junk=0.0), gen(3)
    for p in task.sample_problems(300, g):
        text = task.sft_example(p, g)
        assert task.verify(p, text) == 0.0 and text.split("=")[-1].isdigit()
        assert len(text) + 1 <= task.max_response_len


def test_bad_knobs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="max_number"):
        StepsTask(max_number=12)
    with pytest.raises(UsageError, match="p_correct"):
        get_task("countdown_tail", p_junk=2.0)
