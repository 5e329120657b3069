"""`steerbench validate-omega` end to end on a tiny run directory, plus its usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from omega_helpers import STABLE_ESTIMATOR_KEYS
from omega_helpers import run_validate_omega as run_cli
from omegaconf import OmegaConf

from steerbench.config import compose
from steerbench.local.model import ModelConfig, TinyPolicy
from steerbench.tasks.core import TOKENIZER


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = compose(["model.n_layer=1", "model.d_model=32", "model.n_head=2", "method=steer"])
    path = tmp_path_factory.mktemp("run")
    (path / "config.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(cfg, resolve=True)))
    torch.manual_seed(0)
    m = cfg.model
    model = TinyPolicy(ModelConfig(TOKENIZER.vocab_size, m.n_layer, m.n_head, m.d_model, m.max_seq_len))
    (path / "checkpoints").mkdir()
    torch.save({"step": 10, "model": model.state_dict()}, path / "checkpoints" / "latest.pt")
    return path


COMMON = ["--batches", "3", "--prompts", "3", "--group-size", "4", "--n-boot", "10", "--rewards", "random"]


def test_json_report_has_the_stable_schema(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["--run", str(run_dir), *COMMON, "--lrs", "1e-3,1e-2", "--json"], monkeypatch)
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"estimators", "setup", "lr_sweep"}
    assert set(report["estimators"]) == {"steer_release", "steer_paper", "softmax_full", "cov", "jvp"}
    for est in report["estimators"].values():
        assert set(est) >= STABLE_ESTIMATOR_KEYS
        assert set(est["levels"]) == {"token", "sequence", "batch"}
        assert est["levels"]["batch"]["n"] == 3
    assert report["setup"]["method"] == "steer"  # taken from the run's config
    assert report["setup"]["source"] == "run" and report["setup"]["task"] == "add"
    assert set(report["lr_sweep"]) == {"0.001", "0.01"}
    assert report["estimators"]["jvp"]["pearson"] > 0.9
    # memory-bounded by default: the chunk the model fits in the budget, predicted and measured peaks
    setup = report["setup"]
    assert 1 <= setup["row_chunk"] <= 12 and setup["predicted_peak_gb"] <= setup["memory_budget_gb"]
    assert setup["measured_peak_gb"] >= 0


def test_a_small_memory_budget_takes_fewer_sequences_per_pass(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from steerbench.analysis.omega.measure import MemoryShape

    cfg = compose(["model.n_layer=1", "model.d_model=32", "model.n_head=2"]).model  # the fixture's model
    model = TinyPolicy(
        ModelConfig(TOKENIZER.vocab_size, cfg.n_layer, cfg.n_head, cfg.d_model, cfg.max_seq_len)
    )
    # room for one sequence of the longest possible length: a few short ones per pass, never all 12
    budget_gb = MemoryShape.of(model, torch.float32).predicted_peak(1, cfg.max_seq_len) / 2**30
    argv = ["--run", str(run_dir), *COMMON, "--estimators", "jvp", "--memory-gb", str(budget_gb), "--json"]
    assert run_cli(argv, monkeypatch) == 0
    setup = json.loads(capsys.readouterr().out)["setup"]
    assert 1 <= setup["row_chunk"] < 12, setup
    assert setup["predicted_peak_gb"] <= setup["memory_budget_gb"] + 1e-3


def test_a_method_with_a_reference_policy_is_measured_against_the_policy_itself(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """kl's loss needs reference log-probs; a lone policy is its own reference (KL and its gradient 0 at
    the step's start), so its one step is grpo's, and the exact estimator tracks it."""
    argv = ["--run", str(run_dir), *COMMON, "--estimators", "jvp", "--json"]
    assert run_cli([*argv, "--method", "kl"], monkeypatch) == 0
    kl = json.loads(capsys.readouterr().out)
    assert run_cli([*argv, "--method", "grpo"], monkeypatch) == 0
    grpo = json.loads(capsys.readouterr().out)
    assert kl["setup"]["method"] == "kl" and kl["estimators"]["jvp"]["pearson"] > 0.9
    assert kl["setup"]["measured_abs_mean"] == pytest.approx(grpo["setup"]["measured_abs_mean"], rel=1e-5)


def test_out_writes_tokens_summary_and_figures(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "omega"
    argv = ["--run", str(run_dir), *COMMON, "--method", "grpo", "--optimizer", "adam", "--lr", "1e-4"]
    assert (
        run_cli(
            [*argv, "--estimators", "steer_paper,jvp", "--lrs", "1e-5,1e-4", "--out", str(out)], monkeypatch
        )
        == 0
    )
    tokens = pd.read_parquet(out / "tokens.parquet")
    assert {"measured", "pred_steer_paper", "pred_jvp", "advantage", "prob", "entropy", "quadrant"} <= set(
        tokens
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["setup"]["optimizer"] == "adam" and summary["setup"]["tokens"] == len(tokens)
    for name in ("hexbin_steer_paper", "hexbin_jvp", "calibration", "quadrants", "error_vs_lr"):
        assert (out / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--estimators", "steer_release,magic"], "unknown estimator"),
        (["--lr", "0"], "lr=0.0 is out of range"),
        (["--lr", "-1e-3"], "must be > 0"),
        (["--optimizer", "lion"], "optimizer"),
        (["--method", "nope"], "unknown method"),
        (["--checkpoints", "foo"], "omega.checkpoints='foo' is unknown; choose latest or all"),
        (["--checkpoints", "all"], "--checkpoints all goes with --run DIR"),
        (["--task", "nope"], "nope"),
        (["--task", "countdown_tail", "--model", "x"], "--task chooses the embedded default policy's task"),
        (["--memory-gb", "0"], "omega.memory_gb=0.0 is out of range; it must be > 0"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(argv, monkeypatch) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_long_tail_task_populates_every_quadrant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ω on the 256-token suite: prompts, EOS and verifier come from the task's own tokenizer."""
    from steerbench.tasks.registry import get_task

    cfg = compose(["task=countdown_tail", "model.n_layer=1", "model.d_model=32", "model.n_head=2"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(cfg, resolve=True)))
    vocab = get_task("countdown_tail").tokenizer.vocab_size
    assert vocab >= 256
    torch.manual_seed(0)
    m = cfg.model
    model = TinyPolicy(ModelConfig(vocab, m.n_layer, m.n_head, m.d_model, m.max_seq_len))
    (tmp_path / "checkpoints").mkdir()
    torch.save({"step": 0, "model": model.state_dict()}, tmp_path / "checkpoints" / "latest.pt")
    out = tmp_path / "omega"
    argv = ["--run", str(tmp_path), *COMMON, "--batches", "2", "--estimators", "steer_release,jvp"]
    assert run_cli([*argv, "--out", str(out), "--json"], monkeypatch) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["setup"]["task"] == "countdown_tail"
    tokens = pd.read_parquet(out / "tokens.parquet")
    # a random policy over 256 tokens puts low probability on its samples, of either advantage sign
    assert tokens["quadrant"].nunique() == 4, tokens["quadrant"].value_counts()
    assert report["estimators"]["jvp"]["pearson"] > 0.9


def test_run_without_checkpoint_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["--run", str(tmp_path)], monkeypatch) == 2
    assert "no config.yaml" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(compose(), resolve=True)))
    assert run_cli(["--run", str(tmp_path)], monkeypatch) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no checkpoint" in err and "checkpoints/latest.pt" in err.replace(" ", "")


def test_model_that_is_not_a_causal_lm_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    transformers = pytest.importorskip("transformers")
    transformers.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(
        tmp_path
    )
    assert run_cli(["--model", str(tmp_path)], monkeypatch) == 2
    assert "not a causal LM" in " ".join(capsys.readouterr().err.split())
    assert run_cli(["--model", str(tmp_path / "missing")], monkeypatch) == 2


def test_hf_causal_lm_runs_tokenizer_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path)
    argv = [
        "--model",
        str(tmp_path),
        "--batches",
        "1",
        "--prompts",
        "2",
        "--group-size",
        "2",
        "--n-boot",
        "5",
    ]
    assert run_cli([*argv, "--estimators", "jvp,softmax_full", "--lr", "0.01", "--json"], monkeypatch) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["setup"]["source"] == "hf" and report["setup"]["tokens"] > 0
    assert report["estimators"]["jvp"]["pearson"] > 0.9


def test_each_flag_is_an_alias_of_the_omega_key_of_its_name() -> None:
    import dataclasses
    import inspect

    from steerbench.commands.validate_omega import flag_overrides, validate_omega_command
    from steerbench.config import compose_omega
    from steerbench.schema import OmegaValidationConfig

    keys = [f.name for f in dataclasses.fields(OmegaValidationConfig)]
    flags = inspect.signature(validate_omega_command).parameters
    assert set(flags) - {"overrides", "out", "as_json"} == set(keys)
    odd_path = Path("/tmp/a b,[c]'d${e}\\")  # read back verbatim, whatever its characters
    flagged = {**dict.fromkeys(keys), "lr": 0.01, "lrs": "1e-3, 1e-2", "estimators": "jvp", "run": odd_path}
    keyed = ["omega.lr=0.01", "omega.lrs=[1e-3,1e-2]", "omega.estimators=[jvp]", "omega.run=/tmp/x"]
    by_flag = OmegaConf.to_container(compose_omega(flag_overrides(flagged)), resolve=True)
    by_key = OmegaConf.to_container(compose_omega(keyed))
    assert by_flag == {**by_key, "run": str(odd_path)}
