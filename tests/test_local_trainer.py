"""The embedded GRPO trainer and `steerbench run`: run store, determinism, resume after SIGKILL, bad input."""

import json

import pytest
import torch
import yaml
from local_helpers import TINY, cli, kill_mid_run, metrics_without_timing

from steerbench.config import compose
from steerbench.execute import execute, run_dir_name
from steerbench.local.trainer import build_policy, build_task, init_state, rl_step

# the reference path (each row scored alone, torch's for-each AdamW): the default equals it to rounding only
REFERENCE = ["trainer.share_prompts=false", "trainer.fused_adamw=false"]


def test_run_store_has_every_file_and_stable_metric_keys(tmp_path):
    cfg = compose([*TINY, "method=steer", "method.lambda_min=0.5"])
    summary = execute(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "overrides.yaml",
        "meta.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/latest.pt",
    ):
        assert (run / name).exists(), name
    assert json.loads((run / "meta.json").read_text())["status"] == "done"
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["lambda_min"] == 0.5
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    for key in (
        "entropy/mean",
        "entropy/delta",
        "reward/mean",
        "acc/train",
        "clip/frac_low",
        "clip/frac_high",
        "steer/weight_mean",
        "omega/abs_mean",
        "time/step_s",
        "throughput/tokens_per_s",
    ):
        assert all(key in r for r in rows[1:]), key
    assert all(0.5 - 1e-9 <= r["steer/weight_mean"] <= 1.0 for r in rows[1:])
    assert {"val/pass@1", "val/pass@k"} <= set(rows[2]) and "val/pass@1" not in rows[1]
    assert summary["final"]["entropy/mean"] == rows[-1]["entropy/mean"]
    assert summary["steps"] == 4


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        execute(
            compose([*TINY, "method=clip_cov", "method.clip_cov_ratio=0.05", f"trainer.seed={seed}"]),
            tmp_path / name,
        )
    a, b, c = (metrics_without_timing(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


@pytest.mark.parametrize("path", [[], REFERENCE], ids=["default", "reference"])
def test_killed_run_resumes_to_exactly_the_uninterrupted_metrics(tmp_path, path):
    overrides = [*TINY, "trainer.steps=16", "method=pos_adv_reweight", *path]
    reference = tmp_path / "reference"
    execute(compose(overrides), reference)
    out = tmp_path / "killed"
    cfg = compose(overrides)
    run_dir = out / run_dir_name(cfg)
    kill_mid_run(out, overrides, run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "running"  # the kill left it unfinished
    result = cli("run", "--out", str(out), *overrides)
    assert result.returncode == 0, result.stderr
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference)


def test_rerunning_a_finished_run_does_no_training(tmp_path):
    cfg = compose(TINY)
    execute(cfg, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns
    execute(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--method", "stear"], "method/stear"),
        (["--scenario", "hard"], "scenario/hard"),
        (["--task", "chess"], "task/chess"),
        (["--steps", "0"], "trainer.steps=0 is out of range"),
        (["--method", "steer", "--lambda-min", "1.5"], "lambda_min=1.5 is out of range"),
        (["trainer.lrr=1"], "trainer.lrr"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, args, fragment):
    result = cli("run", "--out", str(tmp_path), *args)
    assert result.returncode == 2
    assert fragment in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_unwritable_out_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = cli("run", "--out", str(blocker), *TINY)
    assert result.returncode == 2 and "cannot write" in result.stderr


def test_a_run_dir_with_another_config_is_refused_and_kept(tmp_path):
    assert cli("run", "--out", str(tmp_path), *TINY).returncode == 0
    run_dir = tmp_path / run_dir_name(compose(TINY))
    before = (run_dir / "metrics.jsonl").read_bytes()
    result = cli("run", "--out", str(tmp_path), *TINY, "trainer.lr=1e-3")
    assert result.returncode == 2 and "different config" in result.stderr and "trainer.lr" in result.stderr
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_a_run_stored_before_a_knob_was_added_is_still_the_same_run(tmp_path):
    from steerbench.errors import UsageError
    from steerbench.schema import ADDED_KNOBS

    cfg = compose([*TINY, "trainer.steps=2", *REFERENCE])  # what ran before the fast knobs existed
    run_dir = tmp_path / run_dir_name(cfg)
    execute(cfg, run_dir)
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    for section, key in ADDED_KNOBS:  # what a run written before these knobs holds
        del stored[section][key]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    before = (run_dir / "metrics.jsonl").read_bytes()
    assert execute(cfg, run_dir)["steps"] == 2  # found done, not refused, not retrained
    assert (run_dir / "metrics.jsonl").read_bytes() == before
    # the default is the fast path, which that run did not take: another config, named
    with pytest.raises(UsageError, match="different config.*trainer.fused_adamw, trainer.share_prompts"):
        execute(compose([*TINY, "trainer.steps=2"]), run_dir)


def test_corrupt_checkpoint_fails_the_run_with_a_reason(tmp_path):
    overrides = [*TINY, "trainer.steps=2"]
    run_dir = tmp_path / run_dir_name(compose(overrides))
    assert cli("run", "--out", str(tmp_path), *overrides).returncode == 0
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["status"] = "running"  # pretend it was interrupted
    (run_dir / "meta.json").write_text(json.dumps(meta))
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"garbage")
    result = cli("run", "--out", str(tmp_path), *overrides)
    assert result.returncode == 1 and "corrupt" in result.stderr
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and "corrupt" in meta["error"]


def test_divergent_training_is_recorded_as_failed(tmp_path):
    overrides = [*TINY, "scenario=random_reward", "trainer.lr=1e30", "trainer.grad_clip=1e30"]
    result = cli("run", "--out", str(tmp_path), *overrides)
    assert result.returncode == 1
    meta = json.loads((tmp_path / run_dir_name(compose(overrides)) / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["error"]


def test_dry_run_prints_the_resolved_config_without_training(tmp_path):
    result = cli(
        "run", "--out", str(tmp_path), "--method", "steer", "--lambda-min", "0.5", "--dry-run", "--json"
    )
    assert result.returncode == 0
    config = json.loads(result.stdout)["config"]
    assert config["method"]["lambda_min"] == 0.5 and config["method"]["clip_high"] == 0.2  # standard
    assert not any(tmp_path.iterdir())


def test_extreme_scenario_overrides_the_method_clipping():
    cfg = compose(["method=steer", "scenario=extreme"])
    assert (cfg.method.clip_low, cfg.method.clip_high) == (0.99, 5.0)
    assert compose(["method=clip_higher"]).method.clip_high == 0.28


def test_entropy_bonus_run_passes_the_gradient_carrying_entropy(tmp_path):
    """α=0 must reproduce GRPO exactly; a large α must push entropy up. A trainer that passed a
    detached (or unrelated) entropy would leave α without effect and fail the second check."""
    runs = {"grpo": ["method=grpo"], "zero": ["method=entropy_bonus", "method.alpha=0"]}
    runs["bonus"] = ["method=entropy_bonus", "method.alpha=1.0"]
    entropy = {}
    for name, extra in runs.items():
        execute(compose([*TINY, *extra]), tmp_path / name)
        entropy[name] = [r["entropy/mean"] for r in metrics_without_timing(tmp_path / name)[1:]]
    assert entropy["zero"] == entropy["grpo"]
    assert entropy["bonus"][-1] > entropy["grpo"][-1]
    assert torch.load(tmp_path / "bonus" / "checkpoints" / "latest.pt", weights_only=False)["step"] == 4


def test_wandb_logs_every_step_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    execute(compose([*TINY, "trainer.wandb=true"]), tmp_path / "run")
    (log,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    data = log.read_bytes()
    rows = metrics_without_timing(tmp_path / "run")
    for key in {k for r in rows for k in r if k != "step"}:
        assert key.encode() in data, key
    assert b"steer/weight_mean" not in data  # only what the run logged
    # wandb writes each logged key once per history row (plus once per summary update): same ratio
    n_val, n_entropy = (sum(key in r for r in rows) for key in ("val/pass@1", "entropy/mean"))
    assert data.count(b"val/pass@1") * n_entropy == data.count(b"entropy/mean") * n_val


@pytest.mark.parametrize("method", ["grpo", "kl"])  # kl: the measured step's loss needs the run's reference
def test_omega_every_logs_validation_without_changing_the_trajectory(tmp_path, method):
    coins = [*TINY, "scenario=random_reward", f"method={method}"]  # the tiny warm start solves nothing
    execute(compose(coins), tmp_path / "plain")
    execute(compose([*coins, "trainer.omega_every=2"]), tmp_path / "omega")
    plain, omega = metrics_without_timing(tmp_path / "plain"), metrics_without_timing(tmp_path / "omega")
    stripped = [{k: v for k, v in r.items() if not k.startswith("omega/")} for r in omega]
    assert stripped == plain
    assert "omega/jvp/pearson" in omega[2] and "omega/jvp/pearson" not in omega[1]
    assert omega[2]["omega/jvp/pearson"] > 0.9  # the exact first-order change tracks one small SGD step


def test_a_hugging_face_causal_lm_trains_in_place_of_the_tiny_model(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=24,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "hf")
    summary = execute(compose([*TINY, f"model.hf_path={tmp_path / 'hf'}"]), tmp_path / "run")
    assert summary["steps"] == 4
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)["model"]
    assert any(key.startswith("lm.model.layers.0") for key in state)  # the HF weights were trained
    result = cli("run", "--out", str(tmp_path / "bad"), "--model", str(tmp_path), *TINY)
    assert result.returncode == 2 and "config.json" in result.stderr


def test_unwritable_warm_start_cache_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("run", "--out", str(tmp_path / "runs"), *TINY, f"warm_start.cache_dir={blocker / 'cache'}")
    assert result.returncode == 2 and "warm-start cache" in " ".join(result.stderr.split())


def test_step_zero_evaluation_is_computed_once_per_warm_start_and_reused(tmp_path, monkeypatch):
    """Cells that share a warm start and an evaluation setting share its step-0 numbers: the first run
    computes them, the next reads them back, identical to what evaluate() gives; another setting recomputes."""
    from steerbench.local import trainer

    cache = tmp_path / "cache"
    base = [*TINY, f"warm_start.cache_dir={cache}"]
    execute(compose(base), tmp_path / "grpo")
    (cached,) = cache.glob("evaluation-step0-*.json")
    first = metrics_without_timing(tmp_path / "grpo")[0]
    stored = json.loads(cached.read_text())
    # the per-prompt record goes to the run's evaluations/, the numbers to metrics.jsonl
    record = json.loads((tmp_path / "grpo" / "evaluations" / "step000000.json").read_text())
    assert stored.pop("per_prompt") == record and record["k"] == 2 and len(record["correct"]) == 8
    assert stored == {k: v for k, v in first.items() if k != "step"}
    assert sum(record["correct"]) / (2 * 8) == first["val/pass@1"]

    steps_evaluated = []
    evaluate = trainer.evaluate
    monkeypatch.setattr(
        trainer,
        "evaluate",
        lambda cfg, task, policy, step: steps_evaluated.append(step) or evaluate(cfg, task, policy, step),
    )
    execute(compose([*base, "method=kl"]), tmp_path / "kl")
    assert 0 not in steps_evaluated and steps_evaluated == [2, 4]  # step 0 came from the cache
    assert metrics_without_timing(tmp_path / "kl")[0] == first
    execute(compose([*base, "trainer.eval_prompts=4"]), tmp_path / "fewer")
    assert steps_evaluated[2] == 0 and len(list(cache.glob("evaluation-step0-*.json"))) == 2
    cached.write_bytes(b'{"val/pass@1": 0.')  # a damaged cache file is recomputed, not a traceback
    execute(compose([*base, "method=clip_higher"]), tmp_path / "damaged")
    assert metrics_without_timing(tmp_path / "damaged")[0] == first
    assert {k: v for k, v in json.loads(cached.read_text()).items() if k != "per_prompt"} == {
        k: v for k, v in first.items() if k != "step"
    }


# the default speed-ups, each alone and together (the default), against REFERENCE: equal to rounding only
FAST = {
    "share_prompts": ["trainer.share_prompts=true", "trainer.fused_adamw=false"],
    "fused_adamw": ["trainer.share_prompts=false", "trainer.fused_adamw=true"],
    "default": [],
}


@pytest.mark.parametrize("fast", FAST.values(), ids=FAST.keys())
def test_a_fast_knob_samples_the_same_rollout_and_takes_the_same_update_to_rounding(fast) -> None:
    steps = []
    for path in (REFERENCE, fast):
        cfg = compose([*TINY, *path, "trainer.minibatches=1"])
        task = build_task(cfg)
        state = init_state(cfg, build_policy(cfg, task))
        row = rl_step(cfg, task, state)
        steps.append((row, [p.detach().clone() for p in state.policy.parameters()]))
    (ref, ref_params), (got, got_params) = steps
    assert got["acc/train"] == ref["acc/train"] and got["entropy/mean"] == ref["entropy/mean"]
    assert got["loss/total"] == pytest.approx(ref["loss/total"], abs=1e-6)
    for ref_param, got_param in zip(ref_params, got_params, strict=True):
        torch.testing.assert_close(got_param, ref_param, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fast", FAST.values(), ids=FAST.keys())
def test_a_fast_knob_run_is_bit_reproducible(tmp_path, fast) -> None:
    overrides = [*TINY, *fast, "trainer.steps=4"]
    for name in ("a", "b"):
        execute(compose(overrides), tmp_path / name)
    assert metrics_without_timing(tmp_path / "a") == metrics_without_timing(tmp_path / "b")


def test_fused_adamw_selects_torchs_fused_kernel() -> None:
    for on in (False, True):
        cfg = compose([*TINY, f"trainer.fused_adamw={on}"])
        state = init_state(cfg, build_policy(cfg, build_task(cfg)))
        assert state.optimizer.param_groups[0]["fused"] is on


def test_share_prompts_reaches_the_trainers_scoring_passes(monkeypatch) -> None:
    import steerbench.local.trainer as trainer

    seen = []

    def scoring(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(args[4])  # response_logprobs(model, tokens, prompt_len, temperature, share_prompts)
        return real(*args, **kwargs)

    real = trainer.response_logprobs
    monkeypatch.setattr(trainer, "response_logprobs", scoring)
    for on in (False, True):
        cfg = compose([*TINY, f"trainer.share_prompts={on}", "trainer.minibatches=1", "method=kl"])
        rl_step(cfg, build_task(cfg), init_state(cfg, build_policy(cfg, build_task(cfg))))
    assert seen == [False, False, True, True]  # the reference pass (kl needs it), then the policy's
