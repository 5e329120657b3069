"""steerbench grid with real (tiny) training: resume, skip, kill -9, failures, Ray and submitit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steerbench.grid import build_spec, run_grid

# A cell that trains in seconds: a 1-layer model, 5 warm-start steps, 4×4 rollouts.
TINY = [
    "model.n_layer=1",
    "model.d_model=32",
    "warm_start.steps=5",
    "trainer.prompts_per_step=4",
    "trainer.samples_per_prompt=4",
    "trainer.minibatches=1",
    "trainer.eval_prompts=8",
    "trainer.pass_k=2",
    "trainer.eval_every=2",
    "trainer.checkpoint_every=1",
]

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERBENCH_CACHE", str(tmp_path / "cache"))


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steerbench.cli", *args], capture_output=True, text=True, timeout=600, **kw
    )


def _meta(run: Path) -> dict:
    return json.loads((run / "meta.json").read_text())


def _steps(run: Path) -> list[int]:
    # every line must be valid JSON: a torn or duplicated row fails here
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _fingerprint(grid_dir: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in sorted(grid_dir.rglob("*")):
        if p.is_file() and ".grid" not in p.parts and p.name != ".lock":
            st = p.stat()
            out[str(p.relative_to(grid_dir))] = (st.st_mtime_ns, st.st_size)
    return out


def test_local_pool_runs_every_cell_and_a_rerun_trains_nothing(tmp_path):
    args = ["grid", "--methods", "grpo,steer", "--seeds", "0", "--steps", "2", "--jobs", "2"]
    proc = _cli(*args, "--out", str(tmp_path), "--json", *TINY)
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    assert [c["status"] for c in cells] == ["done", "done"]
    grid_dir = tmp_path / "grid"
    for c in cells:
        assert _meta(grid_dir / c["name"])["status"] == "done"
        assert _steps(grid_dir / c["name"]) == [0, 1, 2]
    before = _fingerprint(grid_dir)
    proc = _cli(*args, "--out", str(tmp_path), "--json", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert [c["status"] for c in json.loads(proc.stdout)["cells"]] == ["skipped", "skipped"]
    assert _fingerprint(grid_dir) == before
    # the grid grows by a seed: the new cells train, every recorded run stays as it was
    grown = ["grid", "--methods", "grpo,steer", "--seeds", "0,1", "--steps", "2", "--jobs", "2"]
    proc = _cli(*grown, "--out", str(tmp_path), "--json", *TINY)
    assert proc.returncode == 0, proc.stderr
    statuses = {c["name"]: c["status"] for c in json.loads(proc.stdout)["cells"]}
    assert sorted(statuses.values()) == ["done", "done", "skipped", "skipped"]
    assert all(statuses[c["name"]] == "skipped" for c in cells)
    after = _fingerprint(grid_dir)
    assert all(after[k] == v for k, v in before.items() if k != "grid.json")
    assert json.loads((grid_dir / "grid.json").read_text())["grid"]["seeds"] == [0, 1]


def test_killed_grid_resumes_only_the_missing_cells(tmp_path):
    args = [
        "grid",
        "--methods",
        "grpo,steer,kl",
        "--seeds",
        "0",
        "--steps",
        "30",
        "--jobs",
        "1",
    ]  # long enough to kill mid-cell
    args += ["--out", str(tmp_path), *TINY]
    grid_dir = tmp_path / "grid"
    first = grid_dir / "grpo__standard__add__seed0"
    second = grid_dir / "steer__standard__add__seed0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "steerbench.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            if (second / "metrics.jsonl").exists() and len(_steps(second)) >= 3:
                break
            assert proc.poll() is None, "the grid finished before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("the second cell never started")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _meta(first)["status"] == "done"
    assert _meta(second)["status"] == "running"
    first_before = _fingerprint(first)
    time.sleep(1.0)  # any orphan worker would have exited by now (it watches its parent)
    rerun = _cli(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    statuses = {c["name"]: c["status"] for c in json.loads(rerun.stdout)["cells"]}
    assert statuses == {
        "grpo__standard__add__seed0": "skipped",
        "steer__standard__add__seed0": "done",
        "kl__standard__add__seed0": "done",
    }
    assert _fingerprint(first) == first_before
    for name in statuses:
        assert _steps(grid_dir / name) == list(range(0, 31)), name
    assert _meta(second)["attempts"] == 2


def test_a_failing_cell_does_not_stop_the_others_and_exits_1(tmp_path):
    bad = tmp_path / "grid" / "grpo__standard__add__seed1"
    bad.mkdir(parents=True)
    (bad / "config.yaml").write_text("something: else\n")  # a different run lives here
    proc = _cli(
        "grid",
        "--methods",
        "grpo",
        "--seeds",
        "0,1",
        "--steps",
        "1",
        "--jobs",
        "2",
        "--out",
        str(tmp_path),
        *TINY,
    )
    assert proc.returncode == 1, proc.stderr
    assert "1 of 2 grid cells failed: grpo__standard__add__seed1" in proc.stderr
    assert "different config" in proc.stdout + proc.stderr
    assert _meta(tmp_path / "grid" / "grpo__standard__add__seed0")["status"] == "done"


def test_ray_launcher_runs_cells_as_ray_tasks(tmp_path):
    pytest.importorskip("ray")
    spec = build_spec(None, methods="grpo,steer", seeds="0", steps=1, overrides=TINY)
    results = run_grid(spec, tmp_path, launcher="ray", jobs=2, progress=False)
    assert [(r.name, r.status) for r in results] == [
        ("grpo__standard__add__seed0", "done"),
        ("steer__standard__add__seed0", "done"),
    ], [r.error for r in results]
    again = run_grid(spec, tmp_path, launcher="ray", jobs=2, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]


@pytest.mark.parametrize("cluster", ["local", "debug"])
def test_slurm_launcher_through_submitit(tmp_path, cluster):
    pytest.importorskip("submitit")
    spec = build_spec(None, methods="grpo", seeds="0", steps=1, overrides=TINY)
    results = run_grid(
        spec,
        tmp_path,
        launcher="slurm",
        jobs=1,
        progress=False,
        slurm={"cluster": cluster, "cpus_per_task": 1},
    )
    assert [(r.name, r.status) for r in results] == [("grpo__standard__add__seed0", "done")], results
    assert _meta(tmp_path / "grid" / "grpo__standard__add__seed0")["status"] == "done"
    if cluster == "local":
        assert any((tmp_path / "grid" / ".submitit").iterdir())


@pytest.mark.parametrize(
    "option, named",
    [("cluster=nonesuch", "use one of debug, local, slurm"), ("partition_typo=gpu", "partition_typo")],
)
def test_unknown_slurm_cluster_or_option_is_a_usage_error_before_any_cell_runs(tmp_path, option, named):
    pytest.importorskip("submitit")
    from cli_helpers import invoke

    res = invoke(
        "grid",
        "--methods",
        "grpo",
        "--seeds",
        "0",
        "--steps",
        "1",
        "--out",
        str(tmp_path),
        "--launcher",
        "slurm",
        "--slurm",
        option,
        *TINY,
    )
    assert res.code == 2, (res.stdout, res.stderr)
    assert named in res.stdout + res.stderr
    assert not (tmp_path / "grid" / "grpo__standard__add__seed0" / "metrics.jsonl").exists()


def _modules_loaded(out: str) -> None:
    Path(out).write_text(json.dumps({"pid": os.getpid(), "loaded": sorted(sys.modules)}))


def test_local_cell_processes_are_forked_with_torch_and_steerbench_already_imported(tmp_path):
    """The local launcher's point: a cell's process does not pay the ≈ 2 s of imports every cell needs."""
    from steerbench.cell_launchers import FORKSERVER_PRELOAD, _forkserver

    out = tmp_path / "probe.json"
    proc = _forkserver().Process(target=_modules_loaded, args=(str(out),))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    probe = json.loads(out.read_text())
    assert probe["pid"] != os.getpid()
    assert {*FORKSERVER_PRELOAD, "torch", "steerbench.execute", "steerbench.local.trainer"} <= set(
        probe["loaded"]
    )
