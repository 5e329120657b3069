"""validate-omega on a real-architecture causal LM: a tiny random Qwen2 with its own offline BPE tokenizer,
prompted from the shared verl parquet files and scored with the verl backend's math reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("transformers")

from omega_helpers import (
    STABLE_ESTIMATOR_KEYS,  # noqa: E402
    shared_parquet,  # noqa: E402
)
from omega_helpers import run_validate_omega as run_cli  # noqa: E402

from steerbench.analysis.omega.measure import RolloutBatch, measure_entropy_change  # noqa: E402
from steerbench.analysis.omega.policies import HFOptions, hf_subject  # noqa: E402
from steerbench.analysis.omega.sources import collect_batches  # noqa: E402
from steerbench.local.hf import load_hf_policy  # noqa: E402
from steerbench.local.tiny_hf import save_tiny_qwen2  # noqa: E402
from steerbench.tasks.chat import load_hf_tokenizer  # noqa: E402

SMALL = [
    "--batches",
    "3",
    "--prompts",
    "2",
    "--group-size",
    "3",
    "--n-boot",
    "5",
    "--max-new-tokens",
    "6",
    "--max-prompt-tokens",
    "64",
]


@pytest.fixture(scope="module")
def math500() -> Path:
    return shared_parquet("math500.parquet")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory, math500: Path) -> Path:
    import pandas as pd

    texts = [m["content"] for p in pd.read_parquet(math500).prompt[:300] for m in p]
    return save_tiny_qwen2(tmp_path_factory.mktemp("qwen2"), texts + ["The answer is \\boxed{4}."])


def test_cli_json_on_cpu_with_the_models_own_tokenizer(
    tiny_qwen: Path, math500: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", str(tiny_qwen), "--data", str(math500), "--device", "cpu", *SMALL, "--json"]
    assert run_cli(argv, monkeypatch) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"estimators", "setup", "lr_sweep"}
    assert set(report["estimators"]) == {"steer_release", "steer_paper", "softmax_full", "cov", "jvp"}
    for est in report["estimators"].values():
        assert STABLE_ESTIMATOR_KEYS <= set(est)
        assert set(est["levels"]) == {"token", "sequence", "batch"} and est["levels"]["batch"]["n"] == 3
    s = report["setup"]
    assert s["source"] == "hf" and s["tokenizer"] == "Qwen2Tokenizer" and s["data"] == str(math500)
    assert s["device"] == "cpu" and s["tokens"] > 0
    # a random model answers nothing right: every math reward is −1, so the run falls back to coin flips
    assert s["rewards"].startswith("coin flips")


def test_prompts_are_the_datasets_in_the_chat_template_and_the_math_reward_scores(
    tiny_qwen: Path, math500: Path
) -> None:
    sub = hf_subject(tiny_qwen, HFOptions(math500, 8, 1024), torch.float32, torch.device("cpu"))
    tok = load_hf_tokenizer(tiny_qwen)
    ids, records = sub.source.draw(3, torch.Generator().manual_seed(0))
    assert ids.shape[0] == 3 and (ids[:, -1] != sub.policy.pad_id).all()  # left-padded: prompts end flush
    for row, rec in zip(ids, records, strict=True):
        text = tok.decode(row[row != sub.policy.pad_id].tolist())
        question = rec["prompt"][0]["content"]
        assert text == f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    truth = records[0]["reward_model"]["ground_truth"]
    right = torch.tensor([tok(f"So \\boxed{{{truth}}}", add_special_tokens=False)["input_ids"]])
    wrong = torch.tensor([tok("So \\boxed{zzz}", add_special_tokens=False)["input_ids"]])
    assert sub.source.score is not None
    assert sub.source.score(records[:1], right, torch.ones_like(right)).tolist() == [1.0]
    assert sub.source.score(records[:1], wrong, torch.ones_like(wrong)).tolist() == [-1.0]


def test_a_left_padded_prompt_scores_exactly_like_the_unpadded_one(tiny_qwen: Path) -> None:
    policy = load_hf_policy(tiny_qwen, torch.float64).eval()
    policy.pad_id = 0
    short, long = [5, 9, 12], [7, 8, 9, 10, 11, 13]
    response = [20, 21, 22, 0, 23]  # a pad id inside the response is a real token, not masked
    padded = torch.tensor([[0, 0, 0, *short, *response], [*long, *response]])
    with torch.no_grad():
        logits = policy(padded)
        alone = policy.lm(input_ids=torch.tensor([[*short, *response]])).logits
    torch.testing.assert_close(logits[0, 3:], alone[0], rtol=0, atol=1e-12)


def _float64_batches(tiny_qwen: Path, math500: Path) -> tuple[torch.nn.Module, RolloutBatch]:
    sub = hf_subject(tiny_qwen, HFOptions(math500, 6, 64), torch.float64, torch.device("cpu"))
    batches, _ = collect_batches(
        sub.policy, sub.source, batches=1, prompts=3, group_size=2, temperature=1.0, method="grpo",
        knobs={}, generator=torch.Generator().manual_seed(3), coin_flips=True,
    )  # fmt: skip
    return sub.policy, batches[0]


def test_jvp_matches_the_measured_change_at_small_lr_in_float64(tiny_qwen: Path, math500: Path) -> None:
    policy, batch = _float64_batches(tiny_qwen, math500)
    assert batch.tokens.shape[0] == 6 and (batch.tokens[:, 0] == policy.pad_id).any()  # some rows padded
    errors = []
    for lr in (1e-2, 1e-3):
        res = measure_entropy_change(
            policy, batch, "grpo", "sgd", lr, estimators=("jvp",), dtype=torch.float64
        )
        m = res.response_mask
        y, x = res.measured[m], res.predicted["jvp"][m]
        errors.append(float((x - y).norm() / y.norm()))
    assert errors[1] < 0.02  # first order: exact up to a remainder ...
    assert errors[1] < errors[0] / 5  # ... that shrinks with lr (measured: 0.073 at 1e-2, 0.0075 at 1e-3)


def test_row_chunks_change_memory_not_the_result(tiny_qwen: Path, math500: Path) -> None:
    policy, batch = _float64_batches(tiny_qwen, math500)
    whole = measure_entropy_change(policy, batch, "grpo", "sgd", 1e-2, dtype=torch.float64)
    chunked = measure_entropy_change(policy, batch, "grpo", "sgd", 1e-2, dtype=torch.float64, row_chunk=1)
    torch.testing.assert_close(chunked.measured, whole.measured, rtol=1e-9, atol=1e-14)
    for name, pred in whole.predicted.items():
        torch.testing.assert_close(chunked.predicted[name], pred, rtol=1e-9, atol=1e-14)


def test_bfloat16_weights_keep_float32_statistics(
    tiny_qwen: Path, math500: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", str(tiny_qwen), "--data", str(math500), "--dtype", "bfloat16", "--lr", "0.1"]
    assert run_cli([*argv, *SMALL, "--estimators", "jvp,steer_release", "--json"], monkeypatch) == 0
    s = json.loads(capsys.readouterr().out)["setup"]
    assert s["dtype"] == "bfloat16" and s["tokens"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: --device cuda is valid here")
def test_device_cuda_without_a_gpu_exits_2(
    tiny_qwen: Path, math500: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["--model", str(tiny_qwen), "--data", str(math500), "--device", "cuda"], monkeypatch) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--device cuda" in err and "no CUDA GPU" in err and "--device cpu" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dtype", "float16"], "--dtype='float16' is unknown"),
        (["--device", "tpu"], "--device='tpu' is unknown"),
        (["--data", "missing.parquet"], "does not exist"),
    ],
)
def test_bad_model_flags_exit_2(
    tiny_qwen: Path,
    extra: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(["--model", str(tiny_qwen), *extra], monkeypatch) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def _verl_run(
    root: Path, tiny_qwen: Path, math500: Path, steps: tuple[int, ...], weights: bool = True
) -> Path:
    import shutil

    root.mkdir()
    (root / "config.yaml").write_text(
        yaml.safe_dump({"backend": "verl", "method": {"name": "grpo"}, "verl": {"train_files": str(math500)}})
    )
    for step in steps:
        export = root / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface"
        shutil.copytree(tiny_qwen, export)
        if not weights:
            for f in export.glob("*.safetensors"):
                f.unlink()
    return root


def test_verl_run_checkpoints_give_one_table_over_training(
    tmp_path: Path,
    tiny_qwen: Path,
    math500: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = _verl_run(tmp_path / "run", tiny_qwen, math500, (10, 2))
    out = tmp_path / "omega"
    argv = ["--run", str(run), "--checkpoints", "all", *SMALL, "--estimators", "jvp,cov", "--out", str(out)]
    assert run_cli([*argv, "--json"], monkeypatch) == 0
    over = json.loads(capsys.readouterr().out)["checkpoints"]
    assert [c["step"] for c in over] == [2, 10]
    for c in over:
        assert set(c["estimators"]) == {"jvp", "cov"} and c["setup"]["source"] == "verl_run"
        assert c["setup"]["checkpoint_step"] == c["step"] and c["setup"]["data"] == str(math500)
    assert (out / "over_training.png").stat().st_size > 0
    assert [c["step"] for c in json.loads((out / "over_training.json").read_text())["checkpoints"]] == [2, 10]
    assert (out / "step_10" / "tokens.parquet").is_file()
    assert run_cli(["--run", str(run), *SMALL, "--estimators", "cov", "--json"], monkeypatch) == 0
    latest = json.loads(capsys.readouterr().out)  # latest only: the single-run schema, unchanged
    assert latest["setup"]["checkpoint_step"] == 10 and set(latest) == {"estimators", "setup", "lr_sweep"}


def test_verl_run_without_hf_weights_exits_2_naming_the_fix(
    tmp_path: Path,
    tiny_qwen: Path,
    math500: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = _verl_run(tmp_path / "run", tiny_qwen, math500, (5,), weights=False)
    assert run_cli(["--run", str(run)], monkeypatch) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no verl checkpoint with Hugging Face weights" in err and "hf_model added to" in err
