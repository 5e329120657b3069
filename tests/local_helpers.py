"""A tiny, fast run config shared by the embedded-backend tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
