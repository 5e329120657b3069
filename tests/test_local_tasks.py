"""Tasks: tokenizer round trip, fixed-length prompts, exact verifiers, noisy-but-plausible SFT targets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from steerbench.errors import UsageError
from steerbench.tasks.core import (
    TOKENIZER,
    AddTask,
    CountdownTask,
    Problem,
    evaluate_expression,
    prompt_tensor,
    score,
)
from steerbench.tasks.registry import TASKS, get_task


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def countdown_problem(nums: tuple[int, ...], target: int) -> Problem:
    prompt = ",".join(f"{x:02d}" for x in nums) + f":{target:03d}="
    return Problem(prompt, "", [TOKENIZER.bos_id, *TOKENIZER.encode(prompt)])


@given(st.text(alphabet=TOKENIZER.CHARS, max_size=30))
def test_tokenizer_round_trips_the_task_alphabet(text: str) -> None:
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text


def test_decode_stops_at_eos_and_skips_pad_and_bos() -> None:
    ids = [TOKENIZER.bos_id, *TOKENIZER.encode("12"), TOKENIZER.eos_id, *TOKENIZER.encode("9")]
    assert TOKENIZER.decode(ids) == "12"
    assert TOKENIZER.decode([*TOKENIZER.encode("3"), TOKENIZER.pad_id]) == "3"


def test_unknown_character_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="alphabet"):
        TOKENIZER.encode("1/2")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_prompts_have_fixed_length_and_reference_answers_verify(name: str) -> None:
    task = get_task(name)
    problems = task.sample_problems(200, gen())
    assert prompt_tensor(problems).shape == (200, task.prompt_len)
    for p in problems:
        assert p.prompt_ids[0] == TOKENIZER.bos_id and TOKENIZER.decode(p.prompt_ids) == p.prompt
        assert len(p.answer) + 1 <= task.max_response_len
        assert task.verify(p, p.answer) == 1.0


@pytest.mark.parametrize("name", sorted(TASKS))
def test_sampling_is_seed_deterministic(name: str) -> None:
    task = get_task(name)
    assert task.sample_problems(20, gen(3)) == task.sample_problems(20, gen(3))
    assert task.sample_problems(20, gen(3)) != task.sample_problems(20, gen(4))


def test_add_prompt_is_zero_padded_and_answer_is_the_sum() -> None:
    task = AddTask(digits=4)
    p = next(p for p in task.sample_problems(500, gen()) if p.prompt.startswith("0"))
    a, b = p.prompt[:-1].split("+")
    assert len(a) == len(b) == 4 and p.answer == str(int(a) + int(b))
    assert task.verify(Problem("0347+0918=", "1265", []), "1265") == 1.0


@pytest.mark.parametrize("response", ["1266", "1264", "01265", "1265 ", "", "12+65", "=1265"])
def test_add_rejects_perturbed_and_malformed_answers(response: str) -> None:
    assert AddTask(digits=4).verify(Problem("0347+0918=", "1265", []), response) == 0.0


@pytest.mark.parametrize("response", ["7*3+5", "5+3*7", "3*7+5", "(7*3)+5", "5+(3*7)"])
def test_countdown_accepts_every_correct_form(response: str) -> None:
    assert CountdownTask().verify(countdown_problem((7, 3, 5), 26), response) == 1.0


@pytest.mark.parametrize(
    ("response", "why"),
    [
        ("7*3+6", "number not given"),
        ("7*3+5+5", "number reused"),
        ("7*3", "number missing"),
        ("7+3+5", "wrong value"),
        ("7*(3+5", "unbalanced bracket"),
        ("7*3+-5", "unary minus"),
        ("__import__('os')", "arbitrary code"),
        ("7*3+5;1", "trailing junk"),
        ("7**3+5", "power operator"),
        ("", "empty"),
    ],
)
def test_countdown_rejects_invalid_responses(response: str, why: str) -> None:
    assert CountdownTask().verify(countdown_problem((7, 3, 5), 26), response) == 0.0, why


def test_expression_evaluator_follows_precedence_and_brackets() -> None:
    assert evaluate_expression("2+3*4") == (14, [2, 3, 4])
    assert evaluate_expression("(2+3)*4") == (20, [2, 3, 4])
    assert evaluate_expression("9-(4-1)") == (6, [9, 4, 1])
    with pytest.raises(ValueError):
        evaluate_expression("2 + 3")


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("p_correct", [0.0, 0.5, 1.0])
def test_sft_examples_are_correct_with_probability_p(name: str, p_correct: float) -> None:
    task, g = get_task(name, p_correct=p_correct), gen(1)
    problems = task.sample_problems(400, g)
    examples = [task.sft_example(p, g) for p in problems]
    rate = sum(task.verify(p, e) for p, e in zip(problems, examples, strict=True)) / len(problems)
    assert abs(rate - p_correct) < 0.08
    # wrong targets are still well-formed answers the verifier can parse
    assert all(len(e) + 1 <= task.max_response_len for e in examples)
    assert all(e.isdigit() for e in examples) if name == "add" else True


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31))
def test_countdown_sft_examples_use_exactly_the_given_numbers(seed: int) -> None:
    task, g = CountdownTask(), gen(seed)
    p = task.sample_problems(1, g)[0]
    nums = sorted(int(x) for x in p.prompt.split(":")[0].split(","))
    assert sorted(evaluate_expression(task.sft_example(p, g))[1]) == nums


def test_countdown_has_several_correct_answers() -> None:
    task, g = CountdownTask(p_correct=1.0), gen(2)
    problems = task.sample_problems(50, g)
    forms = [len({task.sft_example(p, g) for _ in range(20)}) for p in problems]
    assert sum(forms) / len(forms) > 2


def test_score_decodes_rows_and_verifies() -> None:
    task = AddTask(digits=2)
    problems = [Problem("12+30=", "42", []), Problem("01+01=", "2", [])]
    rows = [[*TOKENIZER.encode("42"), TOKENIZER.eos_id], [*TOKENIZER.encode("3"), TOKENIZER.eos_id, 0]]
    responses = torch.tensor([r + [0] * (4 - len(r)) for r in rows])
    assert score(task, problems, responses).tolist() == [1.0, 0.0]


def test_unknown_task_or_knob_is_a_usage_error_naming_the_choices() -> None:
    with pytest.raises(UsageError, match="allowed: add, arith_text, countdown"):
        get_task("sudoku")
    with pytest.raises(UsageError, match="bad parameters"):
        get_task("add", width=3)
    with pytest.raises(UsageError, match="p_correct"):
        get_task("add", p_correct=1.5)


def test_reversed_add_writes_the_sum_least_significant_digit_first() -> None:
    task = AddTask(digits=3, reverse=True, p_correct=0.0)
    g = gen(5)
    for p in task.sample_problems(100, g):
        a, b = p.prompt[:-1].split("+")
        assert p.answer == str(int(a) + int(b))[::-1]
        wrong = task.sft_example(p, g)
        assert wrong != p.answer and task.verify(p, wrong) == 0.0 and int(wrong[::-1]) >= 0
