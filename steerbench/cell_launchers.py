"""Grid-cell launchers, where the cells of a grid run: ``local`` (processes forked from a preloaded fork
server), ``ray`` (tasks), ``slurm`` (submitit). Not to be confused with ``verl.launcher``, how one verl job
starts.

Each launcher takes the cells to run and yields one ``CellResult`` per cell as it finishes. Every cell
runs in its own process with torch limited to its share of the cores; the training itself is
``steerbench.grid_worker.run_cell`` everywhere.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.context
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from steerbench import grid_worker
from steerbench.errors import UsageError
from steerbench.grid_worker import run_cell

if TYPE_CHECKING:  # a type only: grid imports this module to run its cells
    from steerbench.grid import Cell


@dataclass
class CellResult:
    name: str
    status: str  # done | skipped | failed
    error: str = ""
    seconds: float = 0.0


OnResult = Callable[[CellResult], None] | None
WORK_DIR = ".grid"  # per-cell payloads, results and logs, inside the grid folder


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def payload(cell: Cell, threads: int) -> dict[str, Any]:
    return {
        "name": cell.name,
        "run_dir": str(cell.run_dir),
        "overrides": list(cell.overrides),
        "variant": cell.variant,
        "threads": int(threads),
    }


def _to_result(raw: dict[str, Any]) -> CellResult:
    return CellResult(raw["name"], raw["status"], raw.get("error", ""), float(raw.get("seconds", 0.0)))


@contextmanager
def _bar(total: int, enabled: bool, label: str):
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(label, total=total, last="")

        def advance(res: CellResult) -> None:
            mark = "[green]✓[/]" if res.status == "done" else "[red]✗[/]"
            progress.update(task, advance=1, last=f"{mark} {res.name}")

        yield advance


def _finish(res: CellResult, advance, on_result: OnResult) -> CellResult:
    if advance:
        advance(res)
    if on_result:
        on_result(res)
    return res


# --------------------------------------------------------------------------------------------- local


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# What every cell imports, loaded once in the fork server its processes are forked from: steerbench with
# torch (≈ 1.2 s), and torch._dynamo, which the first optimiser of a process imports (≈ 0.85 s). Paid per
# process, that was ≈ 5% of a `paper` cell.
FORKSERVER_PRELOAD = ["steerbench.cell_launchers", "torch._dynamo"]


def _cell_process(spec: str, log: str) -> None:
    """A cell's process: its output appended to ``log``, then ``grid_worker.main`` on the payload."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.exit(grid_worker.main([spec]))


def _run_process(cell: Cell, threads: int) -> CellResult:
    work = cell.run_dir.parent / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    spec = work / f"{cell.name}.json"
    result = spec.with_suffix(".result.json")
    log = spec.with_suffix(".log")
    result.unlink(missing_ok=True)
    spec.write_text(json.dumps({**payload(cell, threads), "watch_parent": True}))
    start = time.perf_counter()
    proc = _forkserver().Process(target=_cell_process, args=(str(spec), str(log)), name=cell.name)
    proc.start()
    proc.join()
    if result.is_file():
        return _to_result(json.loads(result.read_text()))
    return CellResult(
        cell.name,
        "failed",
        f"worker exited with code {proc.exitcode} and no result; log {log}:\n{_tail(log)}",
        time.perf_counter() - start,
    )


def _forkserver() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    return context


def run_local(
    cells: Sequence[Cell], *, jobs: int = 1, progress: bool = True, on_result: OnResult = None
) -> Iterator[CellResult]:
    """At most ``jobs`` cells at a time, each in a fresh process with ``max(1, cores // jobs)`` torch
    threads, forked from a server that has imported torch and steerbench (a crash stays in its cell)."""
    threads = max(1, cores() // jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool, _bar(len(cells), progress, "grid (local)") as adv:
        futures = [pool.submit(_run_process, cell, threads) for cell in cells]
        for fut in as_completed(futures):
            yield _finish(fut.result(), adv, on_result)


# ----------------------------------------------------------------------------------------------- ray


def run_ray(
    cells: Sequence[Cell],
    *,
    jobs: int = 1,
    progress: bool = True,
    on_result: OnResult = None,
    address: str | None = None,
) -> Iterator[CellResult]:
    """One ``ray.remote`` task per cell (a fresh worker process each, ``max_calls=1``). Without
    ``address`` (or RAY_ADDRESS) a local Ray cluster is started and stopped; ``num_cpus`` per cell is
    the local core count // ``jobs`` on a laptop, or the cluster's CPU count // ``jobs`` (at least 1)."""
    try:
        import ray
    except ImportError:
        raise UsageError("--launcher ray needs Ray: pip install 'steerbench[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        ray.init(**kwargs)
        started = True
    try:
        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        per_node = max([int(n.get("Resources", {}).get("CPU", 1)) for n in nodes] or [1])
        cpus = max(1, min(per_node, total_cpus // jobs))
        remote = ray.remote(num_cpus=cpus, max_calls=1, max_retries=0)(run_cell)
        pending = {remote.remote(payload(c, cpus)): c for c in cells}
        with _bar(len(cells), progress, "grid (ray)") as adv:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    cell = pending.pop(ref)
                    try:
                        res = _to_result(ray.get(ref))
                    except Exception as exc:  # the worker process died
                        res = CellResult(cell.name, "failed", f"ray task failed: {type(exc).__name__}: {exc}")
                    yield _finish(res, adv, on_result)
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------- slurm

SLURM_DEFAULTS: dict[str, Any] = {"timeout_min": 24 * 60, "cpus_per_task": 4, "nodes": 1, "tasks_per_node": 1}


def run_slurm(
    cells: Sequence[Cell],
    *,
    jobs: int = 1,
    progress: bool = True,
    on_result: OnResult = None,
    options: dict[str, Any] | None = None,
    folder: Path | str = ".submitit",
    poll_s: float = 2.0,
) -> Iterator[CellResult]:
    """One submitit job per cell (a job array, at most ``jobs`` running at once). ``options`` go to
    ``AutoExecutor.update_parameters`` (``slurm_partition``, ``timeout_min``, ``gpus_per_node``...);
    ``cluster=local|debug`` selects submitit's local or in-process executor (for tests and laptops)."""
    try:
        import submitit
    except ImportError:
        raise UsageError("--launcher slurm needs submitit: pip install 'steerbench[slurm]'") from None
    from submitit.core.plugins import get_executors

    opts = dict(options or {})
    cluster = opts.pop("cluster", None)
    known = sorted(get_executors())
    if cluster is not None and cluster not in known:
        raise UsageError(
            f"--slurm cluster={cluster!r} is not a submitit executor; use one of {', '.join(known)}"
        )
    params = {**SLURM_DEFAULTS, **opts}
    if cluster in ("local", "debug"):
        params.pop("nodes", None)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    try:
        executor.update_parameters(slurm_array_parallelism=jobs, **params)
    except (ValueError, TypeError, NameError) as exc:  # submitit raises NameError for an unknown key
        raise UsageError(f"bad --slurm option: {exc}") from None
    threads = int(params.get("cpus_per_task", 1))
    with executor.batch():
        submitted = [(executor.submit(run_cell, payload(c, threads)), c) for c in cells]
    with _bar(len(cells), progress, "grid (slurm)") as adv:
        pending = list(submitted)
        while pending:
            still = []
            for job, cell in pending:
                if cluster != "debug" and not job.done():
                    still.append((job, cell))
                    continue
                try:
                    res = _to_result(job.result())
                except Exception as exc:  # the job died (timeout, preemption, node failure)
                    res = CellResult(
                        cell.name, "failed", f"slurm job {job.job_id}: {type(exc).__name__}: {exc}"
                    )
                yield _finish(res, adv, on_result)
            pending = still
            if pending:
                time.sleep(poll_s)


LAUNCHERS: dict[str, Callable[..., Iterator[CellResult]]] = {
    "local": run_local,
    "ray": run_ray,
    "slurm": run_slurm,
}
