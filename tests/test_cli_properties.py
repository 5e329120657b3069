"""A property test of the CLI: generated bad (and good) overrides and flags never give a traceback.

For ``run --dry-run``, ``grid --dry-run``, ``compare``, ``validate-omega`` and ``data prepare``, every
example must exit 0, 1 or 2 and, unless it succeeded, say why on stderr. Inputs mix wrong types, NaN,
±inf, zero, negative and huge numbers, unknown keys and empty strings with valid values. The CLI runs
in-process (``cli_helpers.invoke``, as ``main`` does), so ~80 examples fit in about a minute.
``validate-omega`` computes when its inputs are valid, so its examples always carry one input it must
reject before computing (and the test checks it did: exit 2).
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from cli_helpers import invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steerbench import schema
from steerbench.methods import REGISTRY

pytestmark = pytest.mark.filterwarnings("ignore")

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}

NASTY = ["abc", "nan", "inf", "-inf", "0", "-1", "-0.0", "1e400", "1e-320", "", " ", "null", "true",
         "[1,2]", "{a:1}", "'q'", "%x", "=", "1,2", "${oops}", "99999999999999999999999"]  # fmt: skip
numbers = st.one_of(
    st.integers(-(10**25), 10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
words = st.text("abcxyz_-.0123456789", max_size=8)
values = st.one_of(st.sampled_from(NASTY), numbers, words)

TYPED_KEYS = [f"{g}.{f.name}" for g, t in schema.TYPED.items() for f in dataclasses.fields(t)]
METHOD_KEYS = sorted({f"method.{k}" for spec in REGISTRY.values() for k in spec.knobs()})
OTHER_KEYS = ["task.digits", "task.p_correct", "task.n_numbers", "task.max_number", "scenario.random_reward",
              "backend", "method", "task", "scenario", "model", "verl.n_gpus_per_node", "verl.launcher"]  # fmt: skip
UNKNOWN_KEYS = ["trainer.typo", "method.typo", "typo", "+trainer.extra", "~trainer.steps", "trainer", "",
                "task.name", "method.name", "model.typo", "warm_start.typo"]  # fmt: skip
keys = st.sampled_from(TYPED_KEYS + METHOD_KEYS + OTHER_KEYS + UNKNOWN_KEYS)
overrides = st.lists(st.tuples(keys, values).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=3)
groups = st.one_of(st.sampled_from(["steer", "grpo", "clip_cov", "kl_cov", "nope", "", "steer,grpo"]), words)


def _check(result) -> None:
    """The contract for every example: a known exit code and, on failure, a message."""
    assert result.code in (0, 1, 2), (result.code, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    if result.code != 0:
        assert result.stderr.strip(), "a failure must say why"


def _flags(draw, options: dict[str, st.SearchStrategy]) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=3))
    return [x for name in chosen for x in (name, draw(options[name]))]


@settings(max_examples=25, **SETTINGS)
@given(data=st.data(), extra=overrides)
def test_run_dry_run_never_tracebacks_and_writes_nothing(tmp_path_factory, data, extra):
    out = tmp_path_factory.mktemp("run")
    flags = _flags(
        data.draw,
        {"--steps": values, "--seed": values, "--lambda-min": values, "--method": groups, "--task": groups,
         "--scenario": groups, "--mapping": values, "--backend": groups},
    )  # fmt: skip
    result = invoke("run", "--dry-run", "--json", "--out", str(out), *flags, *extra)
    _check(result)
    assert not any(out.iterdir())
    if result.code == 0 and '"run_dir"' in result.stdout:
        config = json.loads(result.stdout)["config"]
        for group, typed in schema.TYPED.items():  # what --dry-run accepted passes its own ranges
            for f in dataclasses.fields(typed):
                rng, value = f.metadata.get("range"), config[group][f.name]
                assert rng is None or value is None or rng.holds(value), (group, f.name, value)
        floats = [v for v in config["method"].values() if isinstance(v, float)]
        assert all(math.isfinite(v) for v in floats)


@settings(max_examples=12, **SETTINGS)
@given(data=st.data(), extra=overrides)
def test_grid_dry_run_never_tracebacks(tmp_path_factory, data, extra):
    out = tmp_path_factory.mktemp("grid")
    flags = _flags(
        data.draw, {"--seeds": st.one_of(values, st.just("0,1")), "--steps": values, "--scenarios": groups,
                    "--name": st.one_of(words, st.sampled_from(["../x", "a/b", ""]))},
    )  # fmt: skip
    result = invoke("grid", "--dry-run", "--methods", data.draw(groups), "--out", str(out), *flags, *extra)
    _check(result)
    assert not any(out.iterdir())


row = st.fixed_dictionaries({"step": st.integers(0, 5)}, optional={"entropy/mean": st.floats(allow_nan=True),
                                                                   "reward/mean": st.floats(-1, 1)})  # fmt: skip
lines = st.one_of(row.map(json.dumps), st.sampled_from(['{"step": 1, "ent', "[]", "null", "\x00\xff", ""]))


@settings(max_examples=10, **SETTINGS)
@given(metrics=st.lists(lines, max_size=6), meta=st.sampled_from(['{"status": "done"}', "{", "[]", "", None]),
       config=st.sampled_from(["method: {name: grpo}\n", "{", "- 1\n", None]), partial=st.booleans())  # fmt: skip
def test_compare_never_tracebacks_on_damaged_run_stores(tmp_path_factory, metrics, meta, config, partial):
    root = tmp_path_factory.mktemp("runs")
    store = root / "grpo__standard__add__seed0"
    store.mkdir()
    (store / "metrics.jsonl").write_text("\n".join(metrics) + "\n")
    for name, text in (("meta.json", meta), ("config.yaml", config)):
        if text is not None:
            (store / name).write_text(text)
    args = ["compare", str(root), "--out", str(root / "report"), "--json"]
    _check(invoke(*args, *(["--include-partial"] if partial else [])))


@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_compare_never_tracebacks_on_bad_paths(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("cmp")
    (root / "a_file").write_text("x")
    where = data.draw(st.sampled_from(["missing", "a_file", "a_file/sub", "", "."]))
    out = data.draw(st.sampled_from(["report", "a_file", "a_file/x"]))
    _check(invoke("compare", str(root / where), "--out", str(root / out)))


REJECTED = {  # one of these makes validate-omega refuse before computing anything
    "--lr": st.sampled_from(["nan", "inf", "-inf", "0", "-1e-3", "abc", ""]),
    "--temperature": st.sampled_from(["nan", "inf", "0", "-1", "x"]),
    "--estimators": st.sampled_from(["", "nope", "jvp,nope", ","]),
    "--optimizer": st.sampled_from(["", "lbfgs", "SGD"]),
    "--batches": st.sampled_from(["0", "-5", "1.5", "x"]),
    "--n-boot": st.sampled_from(["-1", "nan"]),
    "--rewards": st.sampled_from(["", "coin", "TASK"]),
    "--dtype": st.sampled_from(["float16", "", "int"]),
    "--lrs": st.sampled_from(["1e-3,nan", "inf", "abc", "0"]),
    "--method": st.sampled_from(["nope", "stear"]),
}
TINY_OMEGA = ["--batches", "3", "--prompts", "2", "--group-size", "2", "--estimators", "jvp", "--n-boot", "5"]


@settings(max_examples=15, **SETTINGS)
@given(data=st.data())
def test_validate_omega_refuses_bad_inputs_before_computing(tmp_path_factory, data):
    bad = data.draw(st.sampled_from(sorted(REJECTED)))
    args = [*TINY_OMEGA, bad, data.draw(REJECTED[bad])]
    args += _flags(data.draw, {"--seed": values, "--prompts": st.sampled_from(["1", "2", "0", "-1", "x"])})
    out = tmp_path_factory.mktemp("omega") / "out"
    result = invoke("validate-omega", *args, "--out", str(out))
    _check(result)
    assert result.code == 2, f"{args} was not refused: {result.stdout[-300:]}"
    assert not out.exists()


@settings(max_examples=12, **SETTINGS)
@given(data=st.data())
def test_data_prepare_never_tracebacks(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("data") / "out"
    small = st.one_of(st.sampled_from(["0", "-1", "", "x", "nan", "1e3", "2.5"]), st.integers(1, 8).map(str))
    args = ["--task", data.draw(st.one_of(st.sampled_from(["add", "countdown"]), words))]
    args += ["--train-size", data.draw(small), "--val-size", data.draw(small)]
    task_arg = st.tuples(st.sampled_from(["digits", "p_correct", "n_numbers", "typo", ""]), values)
    args += _flags(data.draw, {"--seed": values, "--task-arg": task_arg.map("=".join)})
    result = invoke("data", "prepare", "--out", str(out), *args)
    _check(result)
    if result.code != 0:
        assert not out.exists() or not any(out.iterdir())
