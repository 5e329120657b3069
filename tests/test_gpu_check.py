"""benchmarks/gpu_check.py's CPU dry run: the same code as on a GPU, small shapes; every check must pass."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_dry_runs_on_the_cpu_and_reports_every_section():
    pytest.importorskip("verl")
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--depths", "2", "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "all checks ok" in out
    for section in ("Ω depth ladder", "Loss forward + backward", "verl's ppo_loss on a jagged micro-batch"):
        assert section in out
    ladder = [line for line in out.splitlines() if line.startswith(("| qwen2 | 2 |", "| llama | 2 |"))]
    assert (
        len(ladder) == 2 * 2 * 2
    )  # printed as it goes and again in the Markdown block: 2 families × 2 dtypes
    assert out.count("| clip_cov |") == 2 * 2 and "not run" not in out
