"""Find run stores and load them for ``steerbench compare``.

A run store is a folder holding ``metrics.jsonl`` + ``config.yaml``, or ``summary.json``, written by
either backend. Its identity (method, scenario, task, seed, variant, backend) is the one steerbench.execute wrote
into ``meta.json`` (``runstore.read_identity``); nothing here parses folder names. Its metrics come from
the one metrics reader (``runstore.read_metrics``), whose damaged lines are counted, never dropped
silently. ``load_runs`` returns a ``Runs``: the per-step frame, each run's resolved config and what could
not be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from steerbench.comparisons import flatten
from steerbench.errors import UsageError
from steerbench.methods import REGISTRY
from steerbench.runstore import read_identity, read_json_mapping, read_metrics

RUN_COLUMNS = ["run", "task", "scenario", "method", "variant", "backend", "seed", "status"]
CELL = ["task", "scenario", "method", "variant", "backend"]  # what seeds are pooled over
# The registry's order (the paper's, then other methods as they register); anything else alphabetically.
METHOD_ORDER = list(REGISTRY)
SCENARIO_ORDER = ["standard", "release", "extreme", "random_reward"]
SKIP_DIRS = {"checkpoints", "tokens", ".git", "__pycache__"}


@dataclass
class Runs:
    """What ``load_runs`` read. ``frame``: one row per (run, step), ``RUN_COLUMNS`` + ``step`` + metrics;
    ``configs``: run → its flattened config.yaml (``{}`` if it has none); ``damaged``: run → 1-based line
    numbers of metrics.jsonl that could not be read; ``unidentified``: stores without an identity."""

    frame: pd.DataFrame
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    damaged: dict[str, list[int]] = field(default_factory=dict)
    unidentified: list[str] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)  # run → its folder


def order_key(order: Sequence[str]):
    def key(name: str) -> tuple[int, str]:
        base = str(name).split(" [", 1)[0]  # "grpo [trainer.lr=1e-4]" sorts with grpo
        return (order.index(base), str(name)) if base in order else (len(order), str(name))

    return key


def sorted_methods(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=order_key(METHOD_ORDER))


def sorted_scenarios(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=order_key(SCENARIO_ORDER))


def col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as floats; all-NaN if the runs never logged it."""
    if name in df:
        return pd.to_numeric(df[name], errors="coerce")
    return pd.Series(np.nan, index=df.index, dtype=float)


def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (
        (path / "metrics.jsonl").is_file() and (path / "config.yaml").is_file()
    )


def find_run_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    """Every run store under ``dirs`` (a run dir itself counts), sorted, without duplicates."""
    found: set[Path] = set()
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise UsageError(f"compare: {str(root)!r} is not a directory; pass folders holding run stores")
        for cur, subdirs, _files in os.walk(root):
            here = Path(cur)
            if is_run_dir(here):
                found.add(here.resolve())
                subdirs.clear()  # a run store holds no other runs
                continue
            subdirs[:] = sorted(s for s in subdirs if s not in SKIP_DIRS)
    return sorted(found)


def _read_config(run: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return flatten(cfg) if isinstance(cfg, dict) else {}


def _per_step(rows: list[dict]) -> list[dict]:
    """One row per step, later rows winning (a resumed run may re-log a step), in step order."""
    by_step = {int(r["step"]): r for r in rows}
    return [by_step[s] for s in sorted(by_step)]


def _name(run: Path, base: Path) -> str:
    try:
        return str(run.relative_to(base))
    except ValueError:
        return str(run)


def load_runs(dirs: Sequence[str | Path], *, root: Path | None = None) -> Runs:
    """Every run store under ``dirs``. ``run`` is the run dir relative to ``root`` (default: the common
    parent of all runs), so the result does not depend on where the stores live. A store with a
    ``summary.json`` but no metrics contributes one row built from ``summary["final"]``. Stores without an
    identity are listed in ``unidentified``. Raises ``UsageError`` if no identified run store is found.
    """
    runs = find_run_dirs(dirs)
    if not runs:
        raise UsageError(
            f"compare: no run stores under {', '.join(map(str, dirs))} "
            "(a run store has metrics.jsonl + config.yaml, or summary.json); run `steerbench grid` first"
        )
    base = root or Path(os.path.commonpath([str(r.parent) for r in runs]))
    idents = {run: read_identity(run) for run in runs}
    unidentified = [_name(run, base) for run in runs if not idents[run]]
    runs = [run for run in runs if idents[run]]
    if not runs:
        raise UsageError(
            f"compare: none of the run stores under {', '.join(map(str, dirs))} says which run it is "
            "(no identity in meta.json and no readable config.yaml)"
        )
    keys = [tuple(idents[r][c] for c in CELL) + (idents[r]["seed"],) for r in runs]
    frames, configs, damaged, paths = [], {}, {}, {}
    for run, key in zip(runs, keys, strict=True):
        ident = dict(idents[run])
        twins = [r for r, k in zip(runs, keys, strict=True) if k == key]
        if len(twins) > 1:
            # the same cell and seed twice (e.g. two grids): tell them apart by their folder
            apart = len({t.parent for t in twins}) == len(twins)
            where = (_name(run.parent, base) if run.parent != base else base.name) if apart else run.name
            ident["variant"] = " ".join(x for x in (where, ident["variant"]) if x)
        ident["status"] = read_json_mapping(run / "meta.json").get("status") or "unknown"
        name = _name(run, base)
        read = read_metrics(run / "metrics.jsonl")
        rows = _per_step(read.rows)
        if read.damaged:
            damaged[name] = list(read.damaged)
        if not rows:
            summary = read_json_mapping(run / "summary.json")
            rows = [{**(summary.get("final") or {}), "step": int(summary.get("steps", 0) or 0)}]
        df = pd.DataFrame(rows)
        for c in reversed(RUN_COLUMNS):
            df.insert(0, c, name if c == "run" else ident[c])
        frames.append(df)
        configs[name] = _read_config(run)
        paths[name] = run
    frame = pd.concat(frames, ignore_index=True, sort=False)
    frame["step"] = frame["step"].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    lead = RUN_COLUMNS + ["step"]
    frame = frame[lead + sorted(c for c in frame.columns if c not in lead)]
    frame = frame.sort_values(["run", "step"], kind="mergesort").reset_index(drop=True)
    return Runs(frame, configs, damaged, unidentified, paths)


def finished_only(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of finished runs (status ``done``), and the names of the runs left out."""
    done = frame["status"] == "done"
    left_out = sorted(frame.loc[~done, "run"].unique().tolist())
    if not done.any():
        raise UsageError(
            f"compare: none of the {frame['run'].nunique()} runs has finished (status done); "
            "finish them with `steerbench grid`, or pass --include-partial"
        )
    return frame[done].reset_index(drop=True), left_out
