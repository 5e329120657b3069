"""TEMPORARY stand-in for contract C2 (``steerbench.runstore.read_identity`` / ``read_metrics``), owned by
the robust branch. Deleted when wave2-robust is merged; the names and semantics are the contract's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

IDENTITY_KEYS = ("method", "scenario", "task", "seed", "variant", "backend")


def read_identity(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    ident = meta.get("identity") if isinstance(meta, dict) else None
    if isinstance(ident, dict) and set(IDENTITY_KEYS) <= set(ident):
        return dict(ident)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        return {
            "method": str(cfg["method"]["name"]),
            "scenario": str(cfg["scenario"]["name"]),
            "task": str(cfg["task"]["name"]),
            "seed": int(cfg["trainer"]["seed"]),
            "variant": "",
            "backend": str(cfg.get("backend", "local")),
        }
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError, AttributeError):
        return {}


@dataclass(frozen=True)
class MetricsRead:
    rows: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)


def read_metrics(path: Path) -> MetricsRead:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return MetricsRead()
    rows: list[dict[str, Any]] = []
    damaged: list[int] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            damaged.append(number)
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and not isinstance(row["step"], bool):
            rows.append(row)
        else:
            damaged.append(number)
    return MetricsRead(rows, damaged)
