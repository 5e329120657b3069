"""steerbench grid: specs, validation before launch, cell naming, grid.json, dry-run. No training here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from steerbench.analysis.compare.runs import METHOD_ORDER
from steerbench.cli import app
from steerbench.errors import UsageError
from steerbench.grid import (
    GridSpec,
    build_spec,
    check_manifest,
    manifest,
    parse_overrides,
    plan,
    preset_names,
)


def test_dry_run_lists_the_full_product_with_sweeps(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "grid",
            "--methods",
            "grpo,steer",
            "--scenarios",
            "standard,extreme",
            "--seeds",
            "0,1,2",
            "--steps",
            "5",
            "--out",
            str(tmp_path),
            "--dry-run",
            "--json",
            "trainer.lr=1e-4,3e-4",
            "trainer.eval_every=5",
        ],
    )
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert len(cells) == 2 * 2 * 3 * 2
    got = {
        (c["method"], c["scenario"], c["seed"], [o for o in c["overrides"] if "lr=" in o][0]) for c in cells
    }
    want = {
        (m, s, k, f"trainer.lr={lr}")
        for m in ("grpo", "steer")
        for s in ("standard", "extreme")
        for k in (0, 1, 2)
        for lr in ("1e-4", "3e-4")
    }
    assert got == want
    assert all(
        "trainer.steps=5" in c["overrides"] and "trainer.eval_every=5" in c["overrides"] for c in cells
    )
    assert "steer__extreme__add__seed2__lr=3e-4" in {c["name"] for c in cells}
    assert len({c["run_dir"] for c in cells}) == len(cells)
    assert all(c["status"] == "new" for c in cells)
    assert not (tmp_path / "grid").exists()  # a dry run writes nothing


def test_paper_preset_is_ten_methods_three_scenarios_less_the_repeated_runs(tmp_path):
    assert {"paper", "smoke"} <= set(preset_names())
    spec = build_spec("paper")
    grid_dir, cells = plan(spec, tmp_path)
    assert grid_dir == tmp_path.resolve() / "paper"
    assert spec.methods == METHOD_ORDER  # the paper's order, as compare reports it
    skipped = {
        "clip_higher/release",
        "clip_cov/release",
        "clip_cov/extreme",
        "kl_cov/release",
        "kl_cov/extreme",
    }
    assert set(spec.exclude) == skipped
    # 8 seeds per method; the shared grpo control 16, the two widest-spreading methods 12 (the design), and
    # the seed rule's six cells 3 + 4 + 5 + 1 + 6 + 6 more
    assert len(cells) == (10 * 3 - len(skipped) - 3 * 3) * 8 + 3 * 16 + 2 * 3 * 12 + 25
    assert {(c.scenario, c.seed) for c in cells} == {
        (s, k) for s in ("standard", "release", "extreme") for k in range(16)
    }


def test_the_papers_grpo_cells_train_as_the_controls_grpo_cells_apart_from_in_training_omega(tmp_path):
    """Ω is measured on a copy of the policy, so the paper's grpo runs are the controls' and the pilot's."""
    from steerbench.comparisons import BOOKKEEPING

    def grpo_standard(preset: str) -> dict:
        cell = next(
            c for c in plan(build_spec(preset), tmp_path)[1] if c.name == "grpo__standard__countdown__seed0"
        )
        return {k: v for k, v in cell.config.items() if k not in BOOKKEEPING}

    assert grpo_standard("paper") == grpo_standard("controls")


def test_the_pilots_grpo_cells_train_exactly_as_the_controls_grpo_cells(tmp_path):
    """The pilot that chose the controls' seeds ran the controls' own grpo cells: the same composed config."""
    from steerbench.config import compose, to_dict

    def grpo_standard(preset: str) -> dict:
        cell = next(
            c for c in plan(build_spec(preset), tmp_path)[1] if c.name == "grpo__standard__countdown__seed0"
        )
        return to_dict(compose(list(cell.overrides)))

    assert grpo_standard("pilot") == grpo_standard("controls")


def test_controls_preset_grades_its_doses_and_runs_the_three_required_controls(tmp_path):
    from steerbench.analysis.compare.controls import CONTROLS

    def pairs(cells) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
        return {(c.method, c.scenario) for c in cells}

    spec = build_spec("controls")
    cells = plan(spec, tmp_path)[1]
    doses = {(c.method, c.variant) for c in cells if c.method != "grpo"}
    assert {v for m, v in doses if m == "kl"} == {
        f"method.beta={b}" for b in ("0.001", "0.003", "0.01", "0.05")
    }
    assert {v for m, v in doses if m == "entropy_bonus"} == {
        f"method.alpha={a}" for a in ("0.001", "0.002", "0.005")
    }
    assert len(cells) == (2 + 4 + 3) * 4 and {c.seed for c in cells} == {0, 1, 2, 3}
    covered = {c.name for c in CONTROLS if {c.treatment, c.reference} <= pairs(cells)}
    assert covered == {"entropy_bonus", "kl", "random_reward"}
    assert spec.design["pilot"]["final_passk"]["effect"] < 0


def test_grid_record_has_no_exclude_key_without_exclusions():
    """Grids recorded before the key existed (grid.json without it) still resume."""
    assert "exclude" not in GridSpec(name="g", methods=["grpo"]).record()
    assert GridSpec(name="g", methods=["grpo"], exclude=["grpo/standard"]).record()["exclude"] == [
        "grpo/standard"
    ]


def test_smoke_preset_is_small():
    spec = build_spec("smoke")
    assert len(spec.methods) == 2 and len(spec.scenarios) == 1 and len(spec.seeds) == 1
    assert spec.steps is not None and spec.steps <= 10


def test_flags_override_the_grid_file(tmp_path):
    spec = build_spec("smoke", seeds="3,4", steps=2, overrides=["trainer.lr=1e-3"])
    assert spec.seeds == [3, 4] and spec.steps == 2 and spec.overrides["trainer.lr"] == ["1e-3"]
    _, cells = plan(spec, tmp_path)
    assert len(cells) == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"methods": "grpo,not_a_method"}, "not_a_method"),
        ({"methods": "grpo", "scenarios": "standrad"}, "standrad"),
        ({"methods": "grpo", "overrides": ["trainer.no_such_key=1"]}, "no_such_key"),
        ({"methods": ""}, "no methods"),
        ({"methods": "grpo", "seeds": "0,x"}, "integers"),
        ({"methods": "grpo,grpo"}, "twice"),
        ({"methods": "grpo", "overrides": ["method=steer"]}, "grid's own field"),
        ({"methods": "grpo", "exclude": "grpo/extreme"}, "not a METHOD/SCENARIO pair"),
        ({"methods": "grpo", "exclude": "grpo"}, "not a METHOD/SCENARIO pair"),
    ],
)
def test_bad_grids_fail_before_anything_runs(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        plan(build_spec(None, **kwargs), tmp_path)
    assert not any(tmp_path.iterdir())


def test_grid_file_with_a_typo_in_a_top_level_key_is_refused(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: g\nmethods: [grpo]\nsenarios: [standard]\n")
    with pytest.raises(UsageError, match="'senarios' \\(did you mean 'scenarios'\\?\\)"):
        build_spec(str(path))


def test_grid_file_sweeps_become_cells(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: sw\nmethods: [steer]\nscenarios: [standard]\nseeds: [0]\n"
        "overrides:\n  method.lambda_min: [0.5, 0.8]\n  trainer.eval_every: 5\n"
    )
    _, cells = plan(build_spec(str(path)), tmp_path)
    assert [c.name for c in cells] == [
        "steer__standard__add__seed0__lambda_min=0.5",
        "steer__standard__add__seed0__lambda_min=0.8",
    ]


def test_unknown_preset_suggests_the_close_one():
    with pytest.raises(UsageError, match="did you mean 'smoke'"):
        build_spec("smok")


def test_a_different_grid_in_the_same_folder_is_refused(tmp_path):
    spec = build_spec(None, name="g", methods="grpo", seeds="0")
    grid_dir, cells = plan(spec, tmp_path)
    check_manifest(grid_dir, spec, cells, write=True)
    manifest = json.loads((grid_dir / "grid.json").read_text())
    assert manifest["grid"]["methods"] == ["grpo"] and list(manifest["cells"]) == [
        "grpo__standard__add__seed0"
    ]
    plan(spec, tmp_path)  # the same grid again is fine
    other = build_spec(None, name="g", methods="grpo", seeds="0", overrides=["trainer.lr=1e-3"])
    with pytest.raises(UsageError, match="different grid \\(differs in: overrides\\)"):
        plan(other, tmp_path)


def test_a_grid_grows_by_new_cells_but_never_loses_or_changes_a_recorded_one(tmp_path):
    spec = build_spec(None, name="g", methods="grpo", seeds="0,1")
    grid_dir, cells = plan(spec, tmp_path)
    check_manifest(grid_dir, spec, cells, write=True)
    grown = build_spec(None, name="g", methods="grpo,kl", seeds="0,1,2")
    grid_dir, cells = plan(grown, tmp_path)
    check_manifest(grid_dir, grown, cells, write=True)
    manifest = json.loads((grid_dir / "grid.json").read_text())
    assert manifest["grid"]["seeds"] == [0, 1, 2] and len(manifest["cells"]) == 6
    with pytest.raises(UsageError, match="different grid \\(differs in: methods, seeds\\)"):
        plan(spec, tmp_path)  # the grown grid's folder no longer takes the smaller one: kl's cells would go
    redeclared = build_spec(None, name="g", methods="grpo,kl", seeds="0,1,2")
    redeclared.design = {"primary": "final_pass1"}  # the same cells: the family declared first stays
    check_manifest(grid_dir, redeclared, plan(redeclared, tmp_path)[1], write=True)
    assert json.loads((grid_dir / "grid.json").read_text()) == manifest


def test_parse_overrides_keeps_lists_whole():
    assert parse_overrides(["a.b=1,2", "c=[1,2]", "d=x"]) == {"a.b": ["1", "2"], "c": ["[1,2]"], "d": ["x"]}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_overrides(["nokey"])


def test_grid_spec_record_is_order_stable():
    a = GridSpec(name="g", methods=["grpo"], overrides={"b": ["1"], "a": ["2"]})
    b = GridSpec(name="g", methods=["grpo"], overrides={"a": ["2"], "b": ["1"]})
    assert json.dumps(a.record()) == json.dumps(b.record())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steerbench.cli", *args], capture_output=True, text=True, timeout=180
    )


def test_cli_bad_method_exits_2_and_names_it(tmp_path):
    proc = _cli("grid", "--methods", "grpo,bogus", "--out", str(tmp_path), "--dry-run")
    assert proc.returncode == 2, proc.stderr
    assert "bogus" in proc.stderr
    proc = _cli("grid", "--methods", "grpo", "--launcher", "pbs", "--out", str(tmp_path))
    assert proc.returncode == 2 and "pbs" in proc.stderr
    assert not (tmp_path / "grid" / "grpo__standard__add__seed0").exists()


def test_grid_takes_the_verl_backend_flags_and_checks_its_inputs_before_any_cell(tmp_path):
    from cli_helpers import invoke

    train, val, model = tmp_path / "dapo.parquet", tmp_path / "aime.parquet", tmp_path / "model"
    train.touch(), val.touch(), model.mkdir()
    flags = ["--backend", "verl", "--model", str(model), "--train-data", str(train)]
    res = invoke(
        "grid",
        "paper",
        *flags,
        "--seeds",
        "0",
        "--val-data",
        str(val),
        "--dry-run",
        "--json",
        "--out",
        str(tmp_path),
    )
    assert res.code == 0, res.stderr
    cells = json.loads(res.stdout)["cells"]
    assert len(cells) == 10 * 3 - 5  # one seed of the preset, its five repeated runs left out
    assert all({"backend=verl", f"verl.train_files={train}"} <= set(c["overrides"]) for c in cells)
    missing = invoke("grid", "paper", *flags, "--dry-run", "--out", str(tmp_path))
    assert missing.code == 2 and "--val-data" in missing.stdout + missing.stderr
    absent = invoke(
        "grid", "paper", *flags, "--val-data", str(tmp_path / "nope.parquet"), "--out", str(tmp_path)
    )
    assert absent.code == 2 and "nope.parquet does not exist" in " ".join(
        (absent.stdout + absent.stderr).split()
    )
    assert not (tmp_path / "paper").exists()


def test_method_overrides_sweep_one_methods_own_knob_only(tmp_path):
    path = tmp_path / "doses.yaml"
    path.write_text(
        "name: doses\nmethods: [grpo, kl]\nseeds: [0, 1]\n"
        "method_overrides:\n  kl: {method.beta: [0.001, 0.01]}\noverrides:\n  task: add\n"
    )
    _, cells = plan(build_spec(str(path)), tmp_path / "out")
    kinds = sorted({(c.method, c.variant) for c in cells})
    assert kinds == [("grpo", ""), ("kl", "method.beta=0.001"), ("kl", "method.beta=0.01")]
    assert len(cells) == 6
    assert all(c.config["method.beta"] == float(c.variant.split("=")[1]) for c in cells if c.method == "kl")
    path.write_text("name: doses\nmethods: [grpo]\nmethod_overrides:\n  kl: {method.beta: [0.001, 0.01]}\n")
    with pytest.raises(UsageError, match="method_overrides names 'kl'"):
        build_spec(str(path))


@pytest.mark.parametrize(
    ("design", "message"),
    [
        ("{primary: pass1}", "design.primary 'pass1' is not one of final_passk"),
        ("{pilot: {final_passk: {sd: 0, effect: -0.3}}}", "design.pilot.final_passk must be"),
        ("{pilot: {final_passk: {sd: 0.1}}}", "design.pilot.final_passk must be"),
        (
            "{primary: final_passk, seeds: 3}",
            "design must be a mapping with keys primary, test, pilot, source",
        ),
        ("{test: anova}", "design.test 'anova' is not one of paired, welch"),
    ],
)
def test_a_malformed_design_is_a_usage_error_naming_the_key(tmp_path, design, message):
    path = tmp_path / "g.yaml"
    path.write_text(f"name: g\nmethods: [grpo]\ndesign: {design}\n")
    with pytest.raises(UsageError, match=message):
        build_spec(str(path))
    from cli_helpers import invoke

    result = invoke("grid", str(path), "--dry-run", "--out", str(tmp_path))
    assert result.code == 2 and message.split(" must")[0].split(" '")[0] in result.stderr


def test_without_the_analysis_extra_the_grid_still_plans_and_names_the_extra(monkeypatch):
    """The design's MDE needs scipy; a run-only install plans the grid and says which extra shows it."""
    import builtins
    import io

    from rich.console import Console

    from steerbench.commands.grid import print_design

    real_import = builtins.__import__

    def no_analysis(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("steerbench.analysis"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_analysis)
    out = io.StringIO()
    spec = build_spec("controls")
    print_design(spec, [], Console(file=out, width=200))
    assert "install steerbench[analysis] to see the MDE" in out.getvalue()


def test_method_seeds_give_one_method_its_own_seeds_and_the_flag_seeds_override_them(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text(
        "name: shared\nmethods: [grpo, kl]\nseeds: [0, 1]\nmethod_seeds:\n  grpo: [0, 1, 2, 3]\n"
        "overrides:\n  task: add\ndesign: {test: welch}\n"
    )
    spec = build_spec(str(path))
    grid_dir, cells = plan(spec, tmp_path / "out")
    assert sorted((c.method, c.seed) for c in cells) == [("grpo", s) for s in range(4)] + [
        ("kl", 0),
        ("kl", 1),
    ]
    record = manifest(spec, cells)
    assert record["grid"]["method_seeds"] == {"grpo": [0, 1, 2, 3]}
    assert record["design"]["family"]["test"] == "welch" and record["design"]["method_seeds"] == {
        "grpo": [0, 1, 2, 3]
    }
    flagged = build_spec(str(path), seeds="5")
    assert {c.seed for c in plan(flagged, tmp_path / "out2")[1]} == {5}
    path.write_text("name: s\nmethods: [grpo]\nmethod_seeds:\n  kl: [0, 1]\n")
    with pytest.raises(UsageError, match="method_seeds names 'kl'"):
        build_spec(str(path))
    path.write_text("name: s\nmethods: [grpo]\nmethod_seeds:\n  grpo/extreme: [0, 1]\n")
    with pytest.raises(UsageError, match="method_seeds names 'grpo/extreme'"):
        build_spec(str(path))
    path.write_text("name: s\nmethods: [grpo]\nmethod_seeds: [0, 1]\n")
    with pytest.raises(UsageError, match="method_seeds must map a method to its seeds"):
        build_spec(str(path))


def test_the_papers_shared_control_holds_more_seeds_than_each_method(tmp_path):
    spec = build_spec("paper")
    _, cells = plan(spec, tmp_path)
    seeds = {}
    for c in cells:
        seeds.setdefault((c.method, c.scenario), set()).add(c.seed)
    assert spec.design["test"] == "welch"
    assert all(seeds[("grpo", s)] == set(range(16)) for s in ("standard", "release", "extreme"))
    assert seeds[("w_reinforce", "extreme")] == seeds[("pos_adv_reweight", "release")] == set(range(12))
    assert seeds[("steer", "standard")] == set(range(8))
    assert seeds[("steer", "extreme")] == seeds[("unlikeliness", "extreme")] == set(range(14))


def test_the_dose_control_trains_the_papers_grpo_runs_and_declares_no_test(tmp_path):
    """dose_grpo is every dose preset's matched control: the paper's grpo/standard seeds 0–7 (bookkeeping
    apart), with an empty family, so the dose report's family is the doses' own."""
    from steerbench.comparisons import BOOKKEEPING, same_config
    from steerbench.grid import family

    spec = build_spec("dose_grpo")
    _, cells = plan(spec, tmp_path)
    paper = {c.name: c for c in plan(build_spec("paper"), tmp_path)[1]}
    assert [c.name for c in cells] == [f"grpo__standard__countdown__seed{s}" for s in range(8)]
    for cell in cells:
        assert same_config(cell.config, paper[cell.name].config)
        assert {k for k in cell.config if cell.config[k] != paper[cell.name].config.get(k)} <= set(
            BOOKKEEPING
        )
    assert family(spec, cells)["size"] == 0
    for method in ("kl", "steer", "clip_cov"):
        dose = next(c for c in plan(build_spec(f"dose_{method}"), tmp_path)[1] if c.seed == 0)
        control = {k: v for k, v in cells[0].config.items() if not k.startswith("method.")}
        assert {k: v for k, v in dose.config.items() if not k.startswith("method.")} == control


def test_one_cells_seeds_come_before_its_methods_and_the_grids(tmp_path):
    path = tmp_path / "cells.yaml"
    path.write_text(
        "name: cells\nmethods: [grpo, kl]\nscenarios: [standard, extreme]\nseeds: [0, 1]\n"
        "method_seeds:\n  grpo: [0, 1, 2, 3]\n  grpo/extreme: [0, 1, 2, 3, 4, 5]\n  kl/extreme: [0, 1, 2]\n"
        "overrides:\n  task: add\n"
    )
    _, cells = plan(build_spec(str(path)), tmp_path / "out")
    seeds: dict[tuple[str, str], list[int]] = {}
    for c in cells:
        seeds.setdefault((c.method, c.scenario), []).append(c.seed)
    assert seeds == {
        ("grpo", "standard"): [0, 1, 2, 3],
        ("grpo", "extreme"): [0, 1, 2, 3, 4, 5],
        ("kl", "standard"): [0, 1],
        ("kl", "extreme"): [0, 1, 2],
    }
