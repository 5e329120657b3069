"""`steerbench data prepare`: embedded tasks as verl-format parquet, scored by steerbench's verl reward."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from steerbench.errors import UsageError
from steerbench.rewards import compute_score, compute_score_with_acc
from steerbench.verl.prepare import PrepareSpec, parse_task_args, prepare

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
VERL_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steerbench.cli", "data", "prepare", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Both tasks via the real CLI, small sizes: {(task, kwargs-label): out_dir}."""
    root = tmp_path_factory.mktemp("prepared")
    cases = {
        "add": ["--task", "add"],
        "add_reversed_1digit": ["--task", "add", "--task-arg", "digits=1", "--task-arg", "reverse=true"],
        "countdown": ["--task", "countdown", "--task-arg", "n_numbers=4"],
    }
    for label, args in cases.items():
        result = cli(
            *args, "--out", str(root / label), "--train-size", "64", "--val-size", "16", "--seed", "3"
        )
        assert result.returncode == 0, result.stderr
    return root


LABELS = ["add", "add_reversed_1digit", "countdown"]


@pytest.mark.parametrize("label", LABELS)
def test_prepared_parquet_has_verl_columns_and_requested_sizes(prepared, label):
    for split, n in (("train", 64), ("val", 16)):
        path = prepared / label / f"{split}.parquet"
        frame = pd.read_parquet(path)
        table = pq.read_table(path)
        assert list(frame.columns) == VERL_COLUMNS == table.column_names
        assert len(frame) == n == table.num_rows
        row = table.slice(0, 1).to_pylist()[0]
        assert row["data_source"] == f"steerbench/{label.split('_')[0]}"
        assert row["prompt"][0]["role"] == "user" and "\\boxed{}" in row["prompt"][0]["content"]
        assert row["extra_info"]["raw_problem"] in row["prompt"][0]["content"]
        assert frame["extra_info"].map(lambda e: e["split"]).eq(split).all()
        assert frame["extra_info"].map(lambda e: e["index"]).tolist() == list(range(n))
    assert not list((prepared / label).glob(".*")), "temporary files were left behind"


def test_prepared_schema_equals_the_shared_verl_datasets_schema(prepared):
    if not SHARED_DATASETS.is_dir():
        pytest.skip(
            f"shared verl datasets not found at {SHARED_DATASETS}; nothing to compare the schema with"
        )
    ours = pq.read_schema(prepared / "countdown" / "train.parquet").remove_metadata()
    for name in ("gsm8k_test.parquet", "math500.parquet"):
        theirs = pq.read_schema(SHARED_DATASETS / name).remove_metadata()
        assert ours.equals(theirs), f"{name}:\n{theirs}\nours:\n{ours}"


@pytest.mark.parametrize("label", LABELS)
def test_every_ground_truth_scores_correct_and_a_wrong_answer_incorrect(prepared, label):
    for split in ("train", "val"):
        for row in pq.read_table(prepared / label / f"{split}.parquet").to_pylist():
            ds, gt, info = row["data_source"], row["reward_model"]["ground_truth"], row["extra_info"]
            assert compute_score(ds, f"Let me think.\n\\boxed{{{gt}}}", gt, info) == 1.0, (row, gt)
            assert compute_score_with_acc(ds, f"\\boxed{{{gt}}}", gt, info) == {"score": 1.0, "acc": 1.0}
            wrong = gt + "1" if label.startswith("add") else gt + "+1"
            assert compute_score(ds, f"\\boxed{{{wrong}}}", gt, info) == -1.0
            assert compute_score(ds, f"\\boxed{{{wrong}}}", gt, info, incorrect_score=0.0) == 0.0
            assert compute_score(ds, "no boxed answer here", gt, info) == -1.0


def test_countdown_reward_accepts_any_correct_expression_and_rejects_the_bare_target(tmp_path):
    prepare(PrepareSpec("countdown", tmp_path, train_size=8, val_size=1, seed=0))
    row = pq.read_table(tmp_path / "val.parquet").to_pylist()[0]
    ds, gt, info = row["data_source"], row["reward_model"]["ground_truth"], row["extra_info"]
    nums, target = info["raw_problem"][:-1].split(":")
    a, b, c = (int(x) for x in nums.split(","))
    from steerbench.tasks.core import _expressions

    others = [e for e in _expressions((a, b, c))[int(target)] if e != gt]
    assert others, "the reference is the only correct expression; pick another seed"
    for expr in others:  # another correct expression than the reference
        assert compute_score(ds, f"\\boxed{{{expr}}}", gt, info) == 1.0, expr
    # the target's value alone equals the ground truth numerically but uses none of the numbers
    assert compute_score(ds, f"\\boxed{{{int(target)}}}", gt, info) == -1.0


def test_same_seed_writes_identical_bytes_and_another_seed_differs(tmp_path):
    for out, seed in (("a", 5), ("b", 5), ("c", 6)):
        prepare(PrepareSpec("add", tmp_path / out, train_size=200, val_size=20, seed=seed))
    for split in ("train.parquet", "val.parquet"):
        assert (tmp_path / "a" / split).read_bytes() == (tmp_path / "b" / split).read_bytes()
        assert (tmp_path / "a" / split).read_bytes() != (tmp_path / "c" / split).read_bytes()


def test_rerun_replaces_existing_files(tmp_path):
    prepare(PrepareSpec("add", tmp_path, train_size=10, val_size=2))
    prepare(PrepareSpec("add", tmp_path, train_size=30, val_size=3))
    assert pq.read_table(tmp_path / "train.parquet").num_rows == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet", "val.parquet"]


def test_task_args_are_typed_by_the_task_fields():
    assert parse_task_args("add", ["digits=2", "reverse=true", "p_correct=0.25"]) == {
        "digits": 2,
        "reverse": True,
        "p_correct": 0.25,
    }
    with pytest.raises(UsageError, match="no parameter 'name'"):
        parse_task_args("add", ["name=x"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "sudoku"], "unknown task 'sudoku'"),
        (["--task", "add", "--train-size", "0"], "--train-size must be a positive"),
        (["--task", "add", "--val-size", "-3"], "--val-size must be a positive"),
        (["--task", "add", "--task-arg", "digits"], "not KEY=VALUE"),
        (["--task", "add", "--task-arg", "digits=two"], "must be int"),
        (["--task", "add", "--task-arg", "reverse=maybe"], "boolean"),
        (["--task", "add", "--task-arg", "colour=red"], "no parameter 'colour'"),
        (["--task", "add", "--task-arg", "digits=9"], "digits must be in 1..8"),
    ],
)
def test_bad_input_exits_2_with_a_message_naming_it(tmp_path, args, message):
    result = cli(*args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_unwritable_out_exits_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = cli("--task", "add", "--out", str(blocker / "sub"), "--train-size", "4", "--val-size", "1")
    assert result.returncode == 2, result.stderr
    assert "cannot write to --out" in " ".join(result.stderr.split())
