"""Typed, validated configuration: every bad knob is refused up front with its key, value and range."""

from __future__ import annotations

import dataclasses

import pytest
from cli_helpers import invoke

from steerbench import schema
from steerbench.config import compose, to_dict
from steerbench.errors import UsageError

BAD = [
    # non-numeric values: Hydra's structured config refuses them while composing
    (["trainer.steps=abc"], "trainer.steps=abc is not an integer; it must be ≥ 1"),
    (["method=steer", "method.lambda_min=abc"], "method.lambda_min=abc is not a number"),
    (["trainer.lr=fast"], "trainer.lr=fast is not a number; it must be > 0"),
    (["trainer.wandb=maybe"], "trainer.wandb=maybe is not true or false"),
    (["trainer.steps="], "trainer.steps= is not an integer"),
    (["trainer.steps=2.5"], "trainer.steps=2.5 is not an integer"),
    (["task.digits=two"], "task.digits=two is not an integer"),
    # NaN and infinities
    (["method.clip_high=nan"], "method.clip_high=nan is not a finite number"),
    (["method.clip_low=-inf"], "method.clip_low=-inf is not a finite number"),
    (["method=kl_cov", "method.kl_coef=inf"], "method.kl_coef=inf is not a finite number"),
    (["trainer.lr=nan"], "trainer.lr=nan is out of range; it must be > 0"),
    (["trainer.temperature=inf"], "trainer.temperature=inf is out of range; it must be > 0"),
    (["warm_start.lr=-inf"], "warm_start.lr=-inf is out of range; it must be > 0"),
    (["task.p_correct=nan"], "task.p_correct=nan is not a finite number"),
    # ranges: each of these crashed mid-run before (ZeroDivisionError, unpacking, RuntimeError)
    (["trainer.eval_every=0"], "trainer.eval_every=0 is out of range; it must be ≥ 1"),
    (["trainer.checkpoint_every=0"], "trainer.checkpoint_every=0 is out of range; it must be ≥ 1"),
    (["trainer.pass_k=0"], "trainer.pass_k=0 is out of range; it must be ≥ 1"),
    (["trainer.threads=-1"], "trainer.threads=-1 is out of range; it must be ≥ 0 and ≤ 4096"),
    (["trainer.seed=-3"], "trainer.seed=-3 is out of range; it must be ≥ 0"),
    (["trainer.weight_decay=-0.1"], "trainer.weight_decay=-0.1 is out of range; it must be ≥ 0"),
    (["warm_start.batch_size=0"], "warm_start.batch_size=0 is out of range; it must be ≥ 1"),
    (["model.n_layer=0"], "model.n_layer=0 is out of range; it must be ≥ 1"),
    (
        ["trainer.minibatches=3"],
        "trainer.minibatches=3 must divide prompts_per_step × samples_per_prompt = 256",
    ),
    (["model.d_model=30"], "model: d_model=30 must be divisible by n_head=4"),
    (
        ["model.max_seq_len=6"],
        "model.max_seq_len=6 is too short for task add: its prompts and responses need 7",
    ),
    (["task=countdown", "task.n_numbers=9"], "countdown: n_numbers must be in 2..4"),
    # unknown keys: named, with the valid ones listed (not Hydra's "+method.typo" hint)
    (["method.typo=1"], "unknown key 'method.typo'; valid keys of method: clip_c, clip_high, clip_low,"),
    (
        ["method=steer", "method.lamda_min=0.5"],
        "valid keys of method: clip_c, clip_high, clip_low, entropy, group,",
    ),
    (["trainer.lrr=1"], "unknown key 'trainer.lrr'; valid keys of trainer: checkpoint_every,"),
    (["trainr.steps=1"], "unknown key 'trainr.steps'; valid keys: backend, method, model,"),
    (["+trainer.x=1"], "unknown key trainer.x; valid keys: checkpoint_every,"),
    (["method.name=steer"], "choose the method with method=<name>, not method.name"),
    (["backend=gpu"], "backend='gpu' is unknown; choose local or verl"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_bad_knob_is_refused_with_its_key_value_and_range(overrides, message):
    with pytest.raises(UsageError) as info:
        compose(overrides)
    assert message in str(info.value)
    assert "+method" not in str(info.value) and "append" not in str(info.value)


@pytest.mark.parametrize("overrides, message", BAD[:4] + BAD[7:9] + BAD[14:18] + BAD[26:27])
def test_run_exits_2_and_creates_nothing(tmp_path, overrides, message):
    out = tmp_path / "runs"
    result = invoke("run", "--out", str(out), *overrides)
    assert result.code == 2
    assert message in " ".join(result.stderr.split())
    assert not out.exists()


def test_every_default_is_inside_its_own_range():
    """The schema's defaults and the YAML presets both pass the validation they define."""
    cfg = compose([])
    for group, typed in schema.TYPED.items():
        for f in dataclasses.fields(typed):
            assert f.name in cfg[group], f"{group}.{f.name} is typed but not in experiments/config.yaml"
            rng = f.metadata.get("range")
            if rng is not None:
                assert rng.holds(f.default), (group, f.name)


def test_typed_values_are_converted_and_the_default_config_is_unchanged():
    cfg = compose(["trainer.lr=1", "trainer.steps=7"])
    assert isinstance(cfg.trainer.lr, float) and cfg.trainer.lr == 1.0 and cfg.trainer.steps == 7
    plain = to_dict(compose([]))
    assert plain["trainer"]["steps"] == 100 and plain["model"]["d_model"] == 128
    assert plain["method"] == {
        "name": "grpo",
        "clip_low": 0.2,
        "clip_high": 0.2,
        "clip_c": 3.0,
        "loss_agg_mode": "token-mean",
        "norm_adv_by_std": True,
    }


def test_range_text_reads_as_the_check_it_makes():
    assert str(schema.Range(0, lo_open=True)) == "> 0"
    assert str(schema.Range(1, 8)) == "≥ 1 and ≤ 8"
    assert schema.Range(0, lo_open=True).holds(1e-9) and not schema.Range(0, lo_open=True).holds(0.0)
    assert not schema.Range(0).holds(float("inf")) and not schema.Range().holds(float("nan"))
