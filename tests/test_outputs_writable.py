"""Every command checks it can write its outputs before computing, and says why it cannot, in words.

A full disk and a read-only file system are real: small tmpfs mounts (this needs root, as the
project's test machines run; elsewhere these tests are skipped with that reason).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_helpers import invoke
from local_helpers import TINY

from steerbench.errors import UsageError
from steerbench.runstore import describe_write_error, ensure_writable

GRID_TINY = [o for o in TINY if not o.startswith("trainer.steps=")]  # the grid sets steps itself
VALIDATE_TINY = ["--batches", "3", "--prompts", "2", "--group-size", "2", "--estimators", "jvp"]


def _mount(folder: Path, *options: str) -> Path:
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    return folder


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a file system with no space left."""
    disk = _mount(tmp_path / "full", "size=128k")
    try:
        with open(disk / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture
def read_only(tmp_path):
    disk = _mount(tmp_path / "ro", "ro,size=128k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERBENCH_CACHE", str(tmp_path / "cache"))


def _commands(out: Path, runs: Path) -> dict[str, list[str]]:
    """Each command with its output folder under ``out`` (``runs``: an existing folder to read)."""
    return {
        "run": ["run", "--out", str(out / "runs"), *TINY],
        "grid": ["grid", "--methods", "grpo", "--steps", "1", "--out", str(out / "runs"), *GRID_TINY],
        "compare": ["compare", str(runs), "--out", str(out / "report")],
        "validate-omega": ["validate-omega", *VALIDATE_TINY, "--out", str(out / "omega")],
        "data prepare": ["data", "prepare", "--task", "add", "--out", str(out / "data"), "--train-size", "4"],
    }


@pytest.mark.parametrize("command", ["run", "grid", "compare", "validate-omega", "data prepare"])
def test_a_full_disk_is_reported_before_any_computation(full_disk, tmp_path, command):
    args = _commands(full_disk, tmp_path)[command]
    result = invoke(*args)
    assert result.code == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"disk full writing --out {full_disk}" in message
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # nothing computed, nothing left
    assert not (tmp_path / "cache").exists()  # not even the warm start ran


@pytest.mark.parametrize("command", ["run", "grid", "compare", "validate-omega", "data prepare"])
def test_a_read_only_output_folder_is_reported_in_words(read_only, tmp_path, command):
    result = invoke(*_commands(read_only, tmp_path)[command])
    assert result.code == 2, result.stderr
    assert "is on a read-only file system" in " ".join(result.stderr.split())


def test_a_file_in_the_way_of_the_output_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UsageError, match=f"cannot write to --out {blocker / 'x'}: {blocker} is a file"):
        ensure_writable(blocker / "x", "--out")


def test_an_unwritable_warm_start_cache_is_refused_before_the_run_directory_exists(
    full_disk, tmp_path, monkeypatch
):
    monkeypatch.setenv("STEERBENCH_CACHE", str(full_disk / "cache"))
    result = invoke("run", "--out", str(tmp_path / "runs"), *TINY)
    assert result.code == 2
    assert "disk full writing the warm-start cache" in " ".join(result.stderr.split())
    assert not (tmp_path / "runs").exists()


def test_a_disk_filling_up_mid_run_fails_the_run_in_words(tmp_path):
    """Room for the up-front check and the config, not for the checkpoint: exit 1, no traceback."""
    disk = _mount(tmp_path / "small", "size=160k")
    try:
        result = invoke("run", "--out", str(disk), *TINY, "trainer.steps=2")
        assert result.code == 1, result.stderr
        message = " ".join(result.stderr.split())
        assert "run failed: disk full writing" in message and "Traceback" not in result.stderr
        (run_dir,) = disk.iterdir()
        meta = json.loads((run_dir / "meta.json").read_text())
        assert meta["status"] == "failed" and meta["error"].startswith("disk full writing")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "disk full writing --out /x"),
        (errno.EDQUOT, "disk full writing --out /x"),
        (errno.EACCES, "permission denied writing --out /x"),
        (errno.EPERM, "permission denied writing --out /x"),
        (errno.EROFS, "cannot write to --out /x: it is on a read-only file system"),
    ],
)
def test_write_errors_read_as_words(code, words):
    assert describe_write_error(OSError(code, os.strerror(code)), Path("/x"), "--out") == words
