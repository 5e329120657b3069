"""The math reward on real rows of the shared datasets, and verl file-logger import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steerbench.rewards import compute_score, compute_score_with_acc, extract_answer
from steerbench.verl.importer import import_verl_logs, merge_attempts


def shared_datasets() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "shared" / "datasets", here.parents[1] / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate
    return None


DATASETS = [
    "DAPO-Math-17k",
    "aime24",
    "aime25",
    "amc23",
    "math500",
    "minerva_math",
    "olympiadbench",
    "gsm8k_test",
    "omni",
]


@pytest.mark.parametrize("name", DATASETS)
def test_ground_truth_scores_correct_and_a_perturbed_answer_wrong_on_real_rows(name):
    root = shared_datasets()
    if root is None:
        pytest.skip("shared datasets not found at ../shared/datasets (relative to the repo)")
    import pandas as pd

    rows = pd.read_parquet(root / f"{name}.parquet").head(40)
    answers = [str(reward["ground_truth"]) for reward in rows["reward_model"]]
    for i, (_, row) in enumerate(rows.iterrows()):
        gt = answers[i]
        ds = row["data_source"]
        assert compute_score(ds, f"Let me think.\n\\boxed{{{gt}}}", gt, row["extra_info"]) == 1.0, gt
        assert compute_score(ds, f"Work...\nAnswer: {gt}", gt) == 1.0, gt
        # a wrong answer for every row (before: integer answers only, none in 3 of the 9 datasets):
        # n+1 for an integer, else the answer of another problem of the same dataset
        other = next(a for a in answers[i + 1 :] + answers[:i] if a.strip() != gt.strip())
        wrong = str(int(gt) + 1) if gt.strip().lstrip("-").isdigit() else other
        assert compute_score(ds, f"\\boxed{{{wrong}}}", gt) == -1.0, (gt, wrong)
        assert compute_score_with_acc(ds, f"\\boxed{{{wrong}}}", gt, incorrect_score=0.0) == {
            "score": 0.0,
            "acc": 0.0,
        }


def test_symbolic_equivalence_and_no_answer():
    assert compute_score("math500", "so \\boxed{\\dfrac{1}{2}}", "0.5") == 1.0
    assert compute_score("x", "Answer: $\\frac{\\sqrt{2}}{2}$", "\\frac{1}{\\sqrt{2}}") == 1.0
    assert compute_score("x", "I give up", "4") == -1.0
    assert extract_answer("first \\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"


def test_random_reward_flips_train_sources_only_and_is_deterministic():
    flips = [
        compute_score("math_dapo", f"resp {i}", "1", {"index": i}, random_reward_sources=["math_dapo"])
        for i in range(64)
    ]
    assert set(flips) == {1.0, -1.0}
    again = [
        compute_score("math_dapo", f"resp {i}", "1", {"index": i}, random_reward_sources=["math_dapo"])
        for i in range(64)
    ]
    assert flips == again
    assert compute_score("aime24", "\\boxed{1}", "1", random_reward_sources=["math_dapo"]) == 1.0


def _write(path: Path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_import_merges_attempts_by_step_later_wins_and_maps_names(tmp_path):
    logs = tmp_path / "verl_logs"
    logs.mkdir()
    step = lambda s, ent: {  # noqa: E731
        "step": s,
        "data": {
            "actor/entropy": ent,
            "actor/pg_clipfrac": 0.1,
            "actor/pg_clipfrac_lower": 0.01,
            "critic/score/mean": 0.5,
            "response_length/mean": 900.0,
            "timing_s/step": 60.0,
            "actor/steer/weight_mean": 0.9,
        },
    }
    _write(logs / "attempt-000.jsonl", [step(1, 1.0), step(2, 0.9), step(3, 0.8)])
    _write(
        logs / "attempt-001.jsonl",
        [
            step(3, 0.7),
            {
                "step": 3,
                "data": {
                    "val-core/aime24/acc/mean@32": 0.2,
                    "val-core/aime24/acc/mean@1": 0.9,
                    "val-core/amc23/acc/mean@32": 0.4,
                },
            },
            step(4, 0.6),
        ],
    )
    (logs / "attempt-001.jsonl").open("a").write('{"step": 5, "da')  # crash mid-line
    assert sorted(merge_attempts(sorted(logs.glob("*.jsonl")))) == [1, 2, 3, 4]
    n = import_verl_logs(None, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert n == 4 and [r["step"] for r in rows] == [1, 2, 3, 4]
    r3 = rows[2]
    assert r3["entropy/mean"] == 0.7  # the resumed attempt wins
    assert r3["clip/frac_high"] == 0.1 and r3["clip/frac_low"] == 0.01
    assert r3["reward/mean"] == 0.5 and r3["acc/train"] == 0.75
    assert r3["val/pass@1/aime24"] == 0.2  # largest N
    assert r3["val/pass@1"] == pytest.approx(0.3)
    assert r3["len/response_mean"] == 900.0 and r3["time/step_s"] == 60.0
    assert r3["steer/weight_mean"] == 0.9 and r3["verl/actor/entropy"] == 0.7
    assert all(isinstance(r["step"], int) for r in rows)
