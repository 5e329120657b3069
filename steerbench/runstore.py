"""One directory per run: config, status, per-step metrics, checkpoint, summary. Every write is atomic.

config.yaml   resolved config          overrides.yaml  the overrides it was composed from
meta.json     status running/done/failed (+ error), the run's identity, versions, git sha, host, times
metrics.jsonl one JSON object per step  checkpoints/latest.pt  model, optimiser, step, RNG states
summary.json  final numbers for ``steerbench compare``; written before ``done``

A run's identity (method, scenario, task, seed, variant, backend) is worked out once, by ``identity``,
written into meta.json by steerbench.execute and read back with ``read_identity``; nothing parses folder names.
``read_metrics`` is the one reader of metrics.jsonl: it keeps every intact row and reports damaged lines.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from steerbench.errors import RunFailed, UsageError
from steerbench.schema import ADDED_KNOBS

TIMING_KEYS = ("time/step_s", "throughput/tokens_per_s")  # excluded from bit-reproducibility
IDENTITY_KEYS = ("method", "scenario", "task", "seed", "variant", "backend")


def identity(config: Mapping[str, Any], variant: str = "") -> dict[str, Any]:
    """Who a run is, from its resolved config: the task of a verl run is its training parquet's stem.

    ``variant`` is "" or the grid's swept overrides (``variant_of``), the only part not in the config's
    names. ``config`` is a resolved DictConfig or the plain dict stored in config.yaml.
    """
    verl_files = (config.get("verl") or {}).get("train_files")
    backend = str(config.get("backend", "local"))
    task = Path(str(verl_files)).stem if backend == "verl" and verl_files else str(config["task"]["name"])
    return {
        "method": str(config["method"]["name"]),
        "scenario": str(config["scenario"]["name"]),
        "task": task,
        "seed": int(config["trainer"]["seed"]),
        "variant": variant,
        "backend": backend,
    }


def variant_of(swept: list[str] | tuple[str, ...]) -> str:
    """A stable string of swept ``key=value`` overrides: sorted by key, joined by spaces."""
    return " ".join(sorted(swept, key=lambda kv: kv.split("=", 1)[0]))


def read_identity(run_dir: Path) -> dict[str, Any]:
    """The identity steerbench.execute wrote into meta.json; for a store without one (written before identities,
    or whose meta.json is damaged), the identity of its config.yaml with variant "". {} if neither is readable.
    """
    run_dir = Path(run_dir)
    meta = read_json_mapping(run_dir / "meta.json")
    if isinstance(meta.get("identity"), dict) and set(IDENTITY_KEYS) <= set(meta["identity"]):
        return dict(meta["identity"])
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        return identity(config)
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError, AttributeError):
        return {}


@dataclass(frozen=True)
class MetricsRead:
    """The rows of a metrics.jsonl. ``rows``: every intact row, in file order; ``damaged``: the 1-based
    numbers of lines that are not a metrics row (torn by a crash or a full disk, or garbage)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)


def read_metrics(path: Path) -> MetricsRead:
    """Every intact row of ``path`` (a JSON object with an integer ``step``); a damaged line is reported
    and skipped, never ends the read: rows after it are kept. A missing file reads as no rows."""
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


def read_json_mapping(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing, unreadable, damaged or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


PROBE_BYTES = 64 * 1024  # enough to meet a full disk, small enough to cost nothing


def describe_write_error(exc: OSError, path: Path, label: str = "") -> str:
    """An OSError met writing ``path``, in words: disk full, permission, read-only, a file in the way.

    ``label`` names where the path came from (e.g. "--out"), so the user knows which flag to change.
    """
    where = f"{label} {path}" if label else str(path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full writing {where}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied writing {where}"
    if exc.errno == errno.EROFS:
        return f"cannot write to {where}: it is on a read-only file system"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"cannot write to {where}: a file is in the way ({exc.filename or path})"
    return f"cannot write to {where}: {exc.strerror or exc}"


def ensure_writable(folder: Path, label: str = "") -> None:
    """Check, before any computation, that outputs can be written into ``folder``; nothing is left behind.

    Writes (and removes) a small probe file in ``folder``, or in its nearest existing parent if it does
    not exist yet. Raises UsageError in words ("disk full writing <folder>", permission denied, ...).
    """
    folder = Path(folder).expanduser().absolute()
    existing = next((d for d in (folder, *folder.parents) if d.exists()), Path("/"))
    where = f"{label} {folder}" if label else str(folder)
    if not existing.is_dir():
        raise UsageError(f"cannot write to {where}: {existing} is a file, not a folder")
    probe = existing / f".steerbench-write-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise UsageError(describe_write_error(exc, folder, label)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


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
    """``torch.save`` atomically; a failed write is an OSError (torch raises "[enforce fail at
    inline_container.cc]"), ENOSPC when the disk has under 1 MiB left."""
    import shutil

    import torch

    full = None
    try:
        atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except RuntimeError as exc:
        if "inline_container" not in str(exc) and "write" not in str(exc):
            raise
        full = shutil.disk_usage(Path(path).parent).free < 2**20
    if full is not None:  # raised out here: the traceback holds torch's writer and its disk space
        raise OSError(errno.ENOSPC if full else errno.EIO, "write failed", str(path))


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
    evaluations_path = property(lambda self: self.path / "evaluations")
    lock_path = property(lambda self: self.path / ".lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the run directory (created if needed) while the block runs.

        A second process (``run`` or a grid cell) on the same directory gets a UsageError naming the
        holder (pid, host) instead of interleaving its rows with the first. The OS drops the lock when
        the holder dies, so a killed run never leaves a stale lock behind.
        """
        import fcntl

        self.create()
        with open(self.lock_path, "a+") as handle:  # "a+": opening must not wipe the holder's note
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise UsageError(
                    f"{self.path} is being run by {holder}; wait for it to finish, or stop that process"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
            handle.flush()
            yield

    def discard(self, new_dirs: list[Path]) -> None:
        """Remove this run directory and those of ``new_dirs`` (its parents made for it) left empty."""
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
        for folder in new_dirs[1:]:
            try:
                folder.rmdir()
            except OSError:  # not empty: another run lives there now
                break

    def create(self) -> None:
        """Create the run directory and check it is writable."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write_probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"run directory: {describe_write_error(exc, self.path)}") from None

    def prepare(self, config: dict[str, Any], overrides: list[str]) -> bool:
        """Create the run directory or check it holds the same config; True if it already existed.

        A damaged config.yaml is rebuilt when nothing in the store depends on it (no metrics row, no
        checkpoint); otherwise the run fails naming the file, since its results' config is unknown.
        """
        self.create()
        if self.config_path.exists():
            stored = self._read_config()
            if stored is None and (self.checkpoint_path.exists() or read_metrics(self.metrics_path).rows):
                error = (
                    f"{self.config_path} is damaged (not a YAML mapping), so the config of the checkpoint "
                    "and metrics in this run directory is unknown; restore the file, or delete the "
                    "directory to start the run over"
                )
                self.write_meta("failed", error=error)
                raise RunFailed(error)
            if stored is None:
                self._set_aside(self.config_path)
                self.update_meta(repairs=[*self.read_meta().get("repairs", []), "config.yaml rebuilt"])
                return self.prepare(config, overrides)
            stored = with_added_knobs(stored)
            if stored != config:
                raise UsageError(
                    f"{self.path} holds a run with a different config; use another --out or delete it "
                    f"(differs in: {', '.join(_diff_keys(stored, config)) or 'structure'})"
                )
            return True
        atomic_write_bytes(self.config_path, yaml.safe_dump(config, sort_keys=True).encode())
        atomic_write_bytes(self.path / "overrides.yaml", yaml.safe_dump(list(overrides)).encode())
        return False

    def _read_config(self) -> dict[str, Any] | None:
        """The stored config, or None if config.yaml is damaged."""
        try:
            stored = yaml.safe_load(self.config_path.read_bytes().decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            return None
        return stored if isinstance(stored, dict) else None

    def _set_aside(self, path: Path) -> Path:
        """Move a damaged file out of the way (kept for inspection) and return where it went."""
        kept = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        os.replace(path, kept)
        return kept

    def read_meta(self) -> dict[str, Any]:
        """meta.json; a damaged one (torn, not JSON, not a mapping) is set aside and the fresh meta
        records the repair. Rebuilding is safe: meta.json only tells whether the run is done, and an
        unknown status resumes from the checkpoint, which reproduces the run exactly."""
        try:
            meta = json.loads(self.meta_path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return {}
        except (UnicodeDecodeError, ValueError):
            meta = None
        if isinstance(meta, dict):
            return meta
        kept = self._set_aside(self.meta_path)
        rebuilt = {
            **_fresh_meta(),
            "repairs": [f"meta.json was damaged; rebuilt (the damaged file is {kept.name})"],
        }
        atomic_write_json(self.meta_path, rebuilt)
        return rebuilt

    def write_meta(self, status: str, **fields: Any) -> None:
        meta = self.read_meta() or _fresh_meta()
        meta.update(fields, status=status, updated=time.time())
        if status != "failed":
            meta.pop("error", None)
        atomic_write_json(self.meta_path, meta)

    def update_meta(self, **fields: Any) -> None:
        """Record ``fields`` in meta.json, keeping its status."""
        meta = self.read_meta()
        self.write_meta(str(meta.get("status", "running")), **fields)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every intact row (``read_metrics``); damaged lines are skipped."""
        return read_metrics(self.metrics_path).rows

    def truncate_metrics(self, last_step: int) -> None:
        """Keep the intact rows up to ``last_step`` (the checkpoint's), so a resume appends each step once.

        Rows are chosen by their ``step``, not their position: a damaged line (recorded in meta.json as
        ``metrics_damaged_lines``) is dropped without losing the intact rows after it.
        """
        read = read_metrics(self.metrics_path)
        if read.damaged:
            self.update_meta(metrics_damaged_lines=read.damaged)
        rows = [r for r in read.rows if r["step"] <= last_step]
        atomic_write_bytes(
            self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
        )

    def write_evaluation(self, step: int, record: dict[str, Any]) -> None:
        """``evaluations/step<NNNNNN>.json``: one validation pass's per-prompt record (compare pairs runs
        by prompt with it). Atomic; a resumed run that redoes the step rewrites the same bytes."""
        self.evaluations_path.mkdir(exist_ok=True)
        atomic_write_json(self.evaluations_path / f"step{step:06d}.json", record)

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _fresh_meta() -> dict[str, Any]:
    return {
        "created": time.time(),
        "host": socket.gethostname(),
        "git_sha": git_sha(),
        "versions": {"python": platform.python_version(), "torch": metadata.version("torch")},
    }


def with_added_knobs(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with each knob added since (`schema.ADDED_KNOBS`) at the value its run ran with."""
    filled = {section: dict(v) if isinstance(v, dict) else v for section, v in stored.items()}
    for (section, key), value in ADDED_KNOBS.items():
        if isinstance(filled.get(section), dict):
            filled[section].setdefault(key, value)
    return filled


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
