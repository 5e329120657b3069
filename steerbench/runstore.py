"""One directory per run: config, status, per-step metrics, checkpoint, summary. Every write is atomic.

config.yaml   resolved config          overrides.yaml  the overrides it was composed from
meta.json     status running/done/failed (+ error), versions, git sha, host, times
metrics.jsonl one JSON object per step  checkpoints/latest.pt  model, optimiser, step, RNG states
summary.json  final numbers for ``steerbench compare``; written before ``done``
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from steerbench.errors import UsageError

TIMING_KEYS = ("time/step_s", "throughput/tokens_per_s")  # excluded from bit-reproducibility


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write(temp_path)`` next to ``path``, then rename over it: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.yaml")
    meta_path = property(lambda self: self.path / "meta.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    summary_path = property(lambda self: self.path / "summary.json")
    checkpoint_path = property(lambda self: self.path / "checkpoints" / "latest.pt")

    def prepare(self, config: dict[str, Any], overrides: list[str]) -> bool:
        """Create the run directory or check it holds the same config; True if it already existed."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write_probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"cannot write to run directory {self.path}: {exc.strerror or exc}") from None
        if self.config_path.exists():
            stored = yaml.safe_load(self.config_path.read_text())
            if stored != config:
                raise UsageError(
                    f"{self.path} holds a run with a different config; use another --out or delete it "
                    f"(differs in: {', '.join(_diff_keys(stored, config)) or 'structure'})"
                )
            return True
        atomic_write_bytes(self.config_path, yaml.safe_dump(config, sort_keys=True).encode())
        atomic_write_bytes(self.path / "overrides.yaml", yaml.safe_dump(list(overrides)).encode())
        return False

    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            return {}
        return json.loads(self.meta_path.read_text())

    def write_meta(self, status: str, **fields: Any) -> None:
        meta = self.read_meta()
        if not meta:
            meta = {
                "created": time.time(),
                "host": socket.gethostname(),
                "git_sha": git_sha(),
                "versions": {"python": platform.python_version(), "torch": torch.__version__},
            }
        meta.update(fields, status=status, updated=time.time())
        if status != "failed":
            meta.pop("error", None)
        atomic_write_json(self.meta_path, meta)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Complete JSON lines only: a line cut by a kill mid-write is ignored."""
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows

    def truncate_metrics(self, last_step: int) -> None:
        """Keep the rows up to ``last_step`` (the checkpoint's), so a resume appends exactly once."""
        rows = [r for r in self.read_metrics() if r["step"] <= last_step]
        atomic_write_bytes(
            self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
        )

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
