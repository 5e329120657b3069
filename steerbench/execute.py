"""Run one config in one run directory: the status protocol shared by `run`, `grid` and every backend.

meta.json goes running → done (summary.json written first) or failed (with the reason); a done run is
returned as is, a partial one resumes from its checkpoint, a directory holding another config is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from steerbench.analysis.omega.in_training import embedded_omega_metrics
from steerbench.config import to_dict
from steerbench.errors import RunFailed, UsageError
from steerbench.local.trainer import train
from steerbench.methods import MethodError
from steerbench.runstore import RunStore, atomic_write_json, describe_write_error, identity
from steerbench.verl.trainer import train_verl

SUMMARY_KEYS = ("entropy/mean", "reward/mean", "acc/train", "val/pass@1", "val/pass@k", "val/entropy")


def run_dir_name(cfg: DictConfig) -> str:
    """``<method>__<scenario>__<task>__seed<k>``, from the run's identity (a grid appends its sweep)."""
    ident = identity(cfg)
    return f"{ident['method']}__{ident['scenario']}__{ident['task']}__seed{ident['seed']}"


def run_summary(ident: dict[str, Any], rows: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    def first_and_last(key: str) -> tuple[Any, Any]:
        values = [r[key] for r in rows if r.get(key) is not None]
        return (values[0], values[-1]) if values else (None, None)

    pairs = {key: first_and_last(key) for key in SUMMARY_KEYS}
    return {
        **ident,
        "steps": max((r["step"] for r in rows), default=0),
        "initial": {k: v[0] for k, v in pairs.items()},
        "final": {k: v[1] for k, v in pairs.items()},
        "wall_s": wall_s,
    }


def execute(
    cfg: DictConfig,
    run_dir: Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    variant: str = "",
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_warm_start: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` in ``run_dir`` (resuming if partial) and return its summary.

    ``variant`` is the grid's swept overrides (``runstore.variant_of``), recorded in the identity.
    A lock on ``run_dir`` keeps a second process out for the whole run (UsageError naming the holder).
    A usage error found only mid-way (e.g. a model directory that cannot be loaded) removes a run
    directory this call created, so the corrected command is not refused as "a different config".
    """
    store = RunStore(run_dir)
    new_dirs = [d for d in (store.path, *store.path.parents) if not d.exists()]
    with store.locked():
        try:
            return _execute_locked(cfg, store, list(overrides), variant, on_step, on_warm_start)
        except UsageError:
            if new_dirs:
                store.discard(new_dirs)
            raise


def _execute_locked(
    cfg: DictConfig,
    store: RunStore,
    overrides: list[str],
    variant: str,
    on_step: Callable[[dict[str, Any]], None] | None,
    on_warm_start: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    run_dir = store.path
    container = to_dict(cfg)
    store.prepare(container, overrides)
    meta = store.read_meta()
    if meta.get("status") == "done" and store.summary_path.exists():
        return json.loads(store.summary_path.read_text())
    started = time.time()
    ident = identity(cfg, variant)
    store.write_meta("running", started=started, attempts=int(meta.get("attempts", 0)) + 1, identity=ident)
    wandb_run = start_wandb(cfg, run_dir, container) if cfg.trainer.wandb else None
    if wandb_run is not None:
        on_step = _also_log_to(wandb_run, on_step)
    try:
        if cfg.backend == "verl":
            rows = train_verl(cfg, store, on_step=on_step, on_warm_start=on_warm_start)
        else:
            # the trainer knows nothing of analysis/: in-training Ω validation is a hook
            step_metrics = embedded_omega_metrics if cfg.trainer.omega_every else None
            rows = train(cfg, store, on_step=on_step, on_warm_start=on_warm_start, step_metrics=step_metrics)
    except RunFailed as exc:
        store.write_meta("failed", error=str(exc))
        raise
    except MethodError as exc:  # config was validated up front: bad tensors mid-run mean divergence
        store.write_meta("failed", error=str(exc))
        raise RunFailed(f"training diverged at a loss input: {exc}") from exc
    except UsageError:
        store.write_meta("failed", error="usage error; see the command's message")
        raise
    except OSError as exc:  # disk full, read-only, permissions: say so, not "[Errno 28] ..."
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            error = describe_write_error(exc, Path(exc.filename or run_dir))
        else:
            error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):  # the disk may be too full to record it
            store.write_meta("failed", error=error)
        raise RunFailed(error) from exc
    except Exception as exc:
        store.write_meta("failed", error=f"{type(exc).__name__}: {exc}")
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        if wandb_run is not None:
            wandb_run.finish()
    summary = run_summary(ident, rows, time.time() - started)
    atomic_write_json(store.summary_path, summary)
    store.write_meta("done", finished=time.time())
    return summary


def start_wandb(cfg: DictConfig, run_dir: Path, config: dict[str, Any]) -> Any:
    """A wandb run in ``run_dir/wandb``; offline unless WANDB_MODE says otherwise; resumes by run id."""
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb needs the wandb package: pip install 'steerbench[wandb]'") from None
    run_id = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
    return wandb.init(
        project=os.environ.get("WANDB_PROJECT", "steerbench"),
        name=run_dir_name(cfg),
        id=run_id,
        resume="allow",
        dir=str(run_dir),
        config=config,
        mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
    )


def _also_log_to(
    wandb_run: Any, on_step: Callable[[dict[str, Any]], None] | None
) -> Callable[[dict[str, Any]], None]:
    def log(row: dict[str, Any]) -> None:
        wandb_run.log({k: v for k, v in row.items() if k != "step" and v is not None}, step=int(row["step"]))
        if on_step:
            on_step(row)

    return log
