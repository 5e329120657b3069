"""compare on a real (tiny) grid: identities, configs and metrics exactly as the runner writes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from local_helpers import TINY
from scipy import stats as st

# the shared tiny run, at 2 steps (set by --steps)
TINY_2 = [o for o in TINY if not o.startswith("trainer.steps=")]

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steerbench.cli", *args], capture_output=True, text=True, timeout=600
    )


def _final_entropy(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["entropy/mean"] for r in rows if "entropy/mean" in r][-1]


def _clipping(run: Path) -> dict:
    method = yaml.safe_load((run / "config.yaml").read_text())["method"]
    return {f"method.{k}": method[k] for k in ("clip_low", "clip_high", "clip_c")}


def test_compare_on_a_real_grid_pairs_each_method_with_grpo(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERBENCH_CACHE", str(tmp_path / "cache"))
    grid = ["grid", "--methods", "grpo,clip_higher,steer", "--seeds", "0,1", "--steps", "2", "--jobs", "2"]
    proc = _cli(*grid, "--out", str(tmp_path), "--name", "g", "--json", *TINY_2)
    assert proc.returncode == 0, proc.stderr
    cells = {}
    for cfg in (tmp_path / "g").glob("*/config.yaml"):
        resolved = yaml.safe_load(cfg.read_text())
        cells[(resolved["method"]["name"], resolved["trainer"]["seed"])] = cfg.parent
    assert len(cells) == 6
    proc = _cli("compare", str(tmp_path / "g"), "--out", str(tmp_path / "rep"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["damaged"] == {}
    verdicts = {v["method"]: v for v in out["verdicts"]}
    assert set(verdicts) == {"clip_higher", "steer"}

    # clip_higher's clipping is its mechanism: matched to grpo of the same scenario, paired over 2 seeds
    v = verdicts["clip_higher"]
    assert v["matched"] and v["control_variant"] == "" and v["pairs"] == 2
    mine = [_final_entropy(cells[("clip_higher", s)]) for s in (0, 1)]
    grpo = [_final_entropy(cells[("grpo", s)]) for s in (0, 1)]
    assert v["final_entropy_diff"] == pytest.approx(np.mean(np.subtract(mine, grpo)))
    d = np.subtract(mine, grpo)
    if abs(d[0] - d[1]) > 1e-12 * max(1.0, abs(d).max()):
        assert v["final_entropy_p"] == pytest.approx(st.ttest_rel(mine, grpo).pvalue)

    # steer must share grpo's clipping (contract C1); whatever clipping key differs is named, nothing else
    steer, control = _clipping(cells[("steer", 0)]), _clipping(cells[("grpo", 0)])
    differing = sorted(k for k in steer if steer[k] != control[k])
    assert verdicts["steer"]["differs"] == ", ".join(differing)
    assert verdicts["steer"]["matched"] == (not differing)
