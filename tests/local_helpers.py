"""A tiny, fast run config shared by the embedded-backend tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from steerbench.runstore import TIMING_KEYS

TINY = [
    "trainer.steps=4",
    "trainer.prompts_per_step=4",
    "trainer.samples_per_prompt=4",
    "trainer.minibatches=2",
    "trainer.eval_every=2",
    "trainer.eval_prompts=8",
    "trainer.pass_k=2",
    "trainer.checkpoint_every=1",
    "trainer.threads=1",
    "warm_start.steps=20",
    "warm_start.batch_size=16",
    "model.d_model=32",
    "model.n_layer=1",
]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "steerbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def metrics_without_timing(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def kill_mid_run(out: Path, overrides: list[str], run_dir: Path, rows: int = 4) -> None:
    """Start ``steerbench run`` in a subprocess and SIGKILL it once ``rows`` metrics rows are written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "steerbench.cli", "run", "--out", str(out), *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline:  # kill mid-run: after a few steps were written, before the end
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rows:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
