"""Run one grid cell in this process: ``python -m steerbench.grid_worker CELL.json``, or ``main([CELL.json])``
in a process the local launcher forks.

The cell JSON holds ``name``, ``run_dir``, ``overrides``, ``variant`` and ``threads``. The worker limits torch to
``threads`` threads (so ``--jobs`` processes do not oversubscribe the cores), composes the config and
calls ``steerbench.execute.execute``, which locks the run folder (a second process on the same cell
fails instead of writing the same files) and trains or resumes from the checkpoint.
Exit code 0: done, 1: the run failed, 2: usage error (e.g. the folder holds a different config).
Under ``watch_parent`` the worker exits when the process that started it dies (the local launcher's fork
server, which dies with the grid), so a killed grid leaves no orphans.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from steerbench.config import compose
from steerbench.errors import RunFailed, UsageError
from steerbench.execute import execute
from steerbench.runstore import atomic_write_json


def _limit_threads(threads: int) -> None:
    """Give torch ``threads`` threads; the trainer keeps them (``trainer.threads: 0``)."""
    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _die_with_parent(parent: int) -> None:
    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(137)
            time.sleep(0.5)

    threading.Thread(target=watch, name="grid-parent-watch", daemon=True).start()


def run_cell(payload: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one cell; never raises: returns ``{"name", "status", "error", "seconds"}``."""

    start = time.perf_counter()
    name = payload["name"]
    run_dir = Path(payload["run_dir"])

    def result(status: str, error: str = "") -> dict[str, Any]:
        return {"name": name, "status": status, "error": error, "seconds": time.perf_counter() - start}

    _limit_threads(payload.get("threads", 1))
    try:
        overrides = list(payload["overrides"])
        execute(compose(overrides), run_dir, overrides=overrides, variant=payload.get("variant", ""))
        return result("done")
    except (RunFailed, UsageError) as exc:
        return result("failed", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a crash in one cell must not take the grid down
        tb = traceback.format_exc(limit=5)
        return result("failed", f"{type(exc).__name__}: {exc}\n{tb}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m steerbench.grid_worker CELL.json", file=sys.stderr)
        return 2
    cell_file = Path(argv[0])
    payload = json.loads(cell_file.read_text())
    if payload.get("watch_parent"):
        _die_with_parent(os.getppid())
    res = run_cell(payload)
    atomic_write_json(cell_file.with_suffix(".result.json"), res)
    return 0 if res["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
