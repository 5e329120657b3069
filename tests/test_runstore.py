"""The run store: one metrics reader that loses no intact row, resume past damage, the run's identity."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from cli_helpers import invoke
from local_helpers import TINY, cli, metrics_without_timing

from steerbench.cell_launchers import payload
from steerbench.config import compose, to_dict
from steerbench.execute import execute, run_dir_name
from steerbench.grid import build_spec, plan
from steerbench.grid_worker import run_cell
from steerbench.runstore import RunStore, read_identity, read_metrics


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERBENCH_CACHE", str(tmp_path / "cache"))


def _rows(*steps: int) -> list[str]:
    return [json.dumps({"step": s, "reward/mean": s / 10}) for s in steps]


def test_reader_keeps_every_intact_row_and_names_each_damaged_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = _rows(0, 1)
    lines += ['{"step": 2, "rew']  # torn by a crash mid-append
    lines += _rows(2, 3)
    lines += ["[1, 2]", '{"no_step": 1}', '{"step": true}']  # JSON, but not a metrics row
    lines += _rows(4)
    data = "\n".join(lines).encode() + b"\n\xff\xfe garbage\n" + _rows(5)[0].encode()  # no final newline
    path.write_bytes(data)
    read = read_metrics(path)
    assert [r["step"] for r in read.rows] == [0, 1, 2, 3, 4, 5]
    assert read.damaged == [3, 6, 7, 8, 10]
    assert read.rows[3] == {"step": 3, "reward/mean": 0.3}


def test_reader_of_a_missing_or_empty_file_has_no_rows(tmp_path):
    assert read_metrics(tmp_path / "absent.jsonl").rows == []
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert read_metrics(tmp_path / "empty.jsonl") == read_metrics(tmp_path / "absent.jsonl")


def test_truncating_to_the_checkpoint_chooses_rows_by_step_not_position(tmp_path):
    store = RunStore(tmp_path)
    lines = _rows(0, 1, 2) + ['{"step": 3, "re'] + _rows(3, 4, 5)
    store.metrics_path.write_text("\n".join(lines) + "\n")
    store.write_meta("running")
    store.truncate_metrics(3)
    assert [r["step"] for r in store.read_metrics()] == [0, 1, 2, 3]
    assert read_metrics(store.metrics_path).damaged == []
    meta = store.read_meta()
    assert meta["metrics_damaged_lines"] == [4] and meta["status"] == "running"


def test_resume_past_a_damaged_middle_line_keeps_every_row(tmp_path):
    """Issue 12's first data loss: a torn line mid-file made resume keep 1 row of 6 and report done."""
    overrides = [*TINY, "trainer.steps=6"]
    reference, damaged = tmp_path / "reference", tmp_path / "damaged"
    execute(compose(overrides), reference)
    execute(compose(overrides), damaged)
    lines = (damaged / "metrics.jsonl").read_text().splitlines(keepends=True)
    torn = lines[2][: len(lines[2]) // 2] + "\n"
    (damaged / "metrics.jsonl").write_text("".join(lines[:2] + [torn] + lines[2:]))
    meta = json.loads((damaged / "meta.json").read_text())
    meta["status"] = "running"  # as after the crash that tore the line
    (damaged / "meta.json").write_text(json.dumps(meta))
    summary = execute(compose(overrides), damaged)
    assert summary["steps"] == 6
    assert metrics_without_timing(damaged) == metrics_without_timing(reference)
    meta = json.loads((damaged / "meta.json").read_text())
    assert meta["status"] == "done" and meta["metrics_damaged_lines"] == [3]


def test_the_runner_writes_the_identity_and_the_summary_agrees(tmp_path):
    cfg = compose([*TINY, "trainer.steps=1", "method=steer", "task=countdown", "trainer.seed=3"])
    summary = execute(cfg, tmp_path / "run", variant="method.lambda_min=0.5")
    ident = read_identity(tmp_path / "run")
    assert ident == {
        "method": "steer",
        "scenario": "standard",
        "task": "countdown",
        "seed": 3,
        "variant": "method.lambda_min=0.5",
        "backend": "local",
    }
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["identity"] == ident
    assert {k: summary[k] for k in ident} == ident


def test_a_verl_runs_task_is_its_training_parquets_stem_everywhere(tmp_path):
    cfg = compose(["backend=verl", "verl.train_files=/data/DAPO-Math-17k.parquet", "method=steer"])
    assert run_dir_name(cfg) == "steer__standard__DAPO-Math-17k__seed0"
    RunStore(tmp_path).prepare(to_dict(cfg), [])
    assert read_identity(tmp_path)["task"] == "DAPO-Math-17k"  # from config.yaml: meta.json not yet written


def test_identity_falls_back_to_config_yaml_when_meta_json_is_damaged(tmp_path):
    execute(compose([*TINY, "trainer.steps=1"]), tmp_path / "run")
    (tmp_path / "run" / "meta.json").write_text('{"status": "do')
    ident = read_identity(tmp_path / "run")
    assert (ident["method"], ident["task"], ident["seed"], ident["variant"]) == ("grpo", "add", 0, "")
    assert read_identity(tmp_path / "nothing_here") == {}


def test_a_grid_cell_records_its_sweep_as_the_variant(tmp_path):
    spec = build_spec(
        methods="steer",
        steps=1,
        overrides=[
            *(o for o in TINY if not o.startswith("trainer.steps=")),
            "method.lambda_min=0.5,0.8",
            "trainer.lr=1e-4,3e-4",
        ],
    )
    _, cells = plan(spec, tmp_path)
    cell = next(c for c in cells if c.name.endswith("lambda_min=0.8__lr=3e-4"))
    assert cell.variant == "method.lambda_min=0.8 trainer.lr=3e-4"
    assert run_cell(payload(cell, threads=1))["status"] == "done"
    assert read_identity(cell.run_dir)["variant"] == "method.lambda_min=0.8 trainer.lr=3e-4"


def test_a_second_run_on_a_locked_run_directory_exits_2_naming_the_holder(tmp_path):
    """Issue 12's second data loss: two `run`s on one directory interleaved their rows (2,0,3,1,...)."""
    # long enough to outlast the second command's start-up (~2-3 s) even with warm caches: ~8 s of steps
    overrides = [*TINY, "trainer.steps=200"]
    run_dir = tmp_path / run_dir_name(compose(overrides))
    first = subprocess.Popen(
        [sys.executable, "-m", "steerbench.cli", "run", "--out", str(tmp_path), *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not (run_dir / "meta.json").exists() and time.time() < deadline:  # lock taken before meta
        time.sleep(0.05)
    second = cli("run", "--out", str(tmp_path), *overrides)
    assert first.poll() is None, "the first run ended before the second started; lengthen it"
    assert second.returncode == 2, second.stderr
    message = " ".join(second.stderr.split())
    assert f"being run by pid {first.pid} on host {socket.gethostname()}" in message
    assert "Traceback" not in second.stderr
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl").rows] == list(range(201))
    # the lock dies with its holder: a later run on the finished directory is not refused
    assert cli("run", "--out", str(tmp_path), *overrides).returncode == 0


def test_a_damaged_meta_json_is_rebuilt_recorded_and_the_run_finishes_unchanged(tmp_path):
    overrides = [*TINY, "trainer.steps=2"]
    assert invoke("run", "--out", str(tmp_path), *overrides).code == 0
    run_dir = tmp_path / run_dir_name(compose(overrides))
    before = metrics_without_timing(run_dir)
    (run_dir / "meta.json").write_bytes(b'{"status": "do\xff')  # torn and not even UTF-8
    result = invoke("run", "--out", str(tmp_path), *overrides)
    assert result.code == 0, result.stderr
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "done" and meta["identity"]["method"] == "grpo"
    (kept,) = run_dir.glob("meta.json.damaged-*")
    assert meta["repairs"] == [f"meta.json was damaged; rebuilt (the damaged file is {kept.name})"]
    assert kept.read_bytes() == b'{"status": "do\xff'
    assert metrics_without_timing(run_dir) == before


def test_a_damaged_config_yaml_beside_results_fails_naming_the_file(tmp_path):
    overrides = [*TINY, "trainer.steps=1"]
    assert invoke("run", "--out", str(tmp_path), *overrides).code == 0
    run_dir = tmp_path / run_dir_name(compose(overrides))
    (run_dir / "config.yaml").write_text("method: {name: grpo\n  trainer: [")
    result = invoke("run", "--out", str(tmp_path), *overrides)
    assert result.code == 1
    message = " ".join(result.stderr.split())
    assert f"{run_dir / 'config.yaml'} is damaged" in message and "Traceback" not in result.stderr
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and "config.yaml is damaged" in meta["error"]


def test_a_damaged_config_yaml_with_no_results_is_rebuilt(tmp_path):
    cfg = compose([*TINY, "trainer.steps=1"])
    store = RunStore(tmp_path)
    store.prepare(to_dict(cfg), [])
    store.config_path.write_text("- not\n- a mapping\n")
    assert store.prepare(to_dict(cfg), []) is False  # rebuilt as a fresh store
    assert RunStore(tmp_path)._read_config() == to_dict(cfg)
    assert store.read_meta()["repairs"] == ["config.yaml rebuilt"]
    assert len(list(tmp_path.glob("config.yaml.damaged-*"))) == 1
