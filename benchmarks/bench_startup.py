"""Start-up time of ``steerbench --help`` and ``steerbench methods`` against a bare interpreter.

Each command runs in a fresh interpreter, the commands interleaved round by round so that machine load
hits them alike; prints the median wall and CPU (user + system) time and the ratio of each to
``python -c pass`` (and to ``import torch``, what the CLI used to pay before any command ran). On a
shared, loaded machine the CPU time is the steadier of the two. ``--baseline PYTHON`` also times
both commands under another interpreter, e.g. a venv holding an older checkout. Nothing is asserted.

    python benchmarks/bench_startup.py [--rounds 7] [--baseline OTHER_VENV/bin/python]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def commands(baseline: str | None) -> dict[str, list[str]]:
    """The console script beside each interpreter: what a user types, importing that venv's steerbench."""
    script = str(Path(sys.executable).with_name("steerbench"))
    timed = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "steerbench --help": [script, "--help"],
        "steerbench methods": [script, "methods"],
    }
    if baseline:
        other = str(Path(baseline).with_name("steerbench"))
        timed["baseline --help"] = [other, "--help"]
        timed["baseline methods"] = [other, "methods"]
    return timed


def timed_run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    start = time.perf_counter()
    # cwd elsewhere: a source checkout in the working directory would shadow the installed package
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir()
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", help="another interpreter with steerbench installed, timed alongside")
    args = parser.parse_args()
    rounds, timed = args.rounds, commands(args.baseline)
    wall: dict[str, list[float]] = {name: [] for name in timed}
    cpu: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, argv in timed.items():
            w, c = timed_run(argv)
            wall[name].append(w)
            cpu[name].append(c)
    print(f"median of {rounds} rounds, each command in a fresh interpreter")
    print(
        f"{'command':<20} {'wall s':>7} {'× pass':>7} {'× torch':>7} {'cpu s':>7} {'× pass':>7} {'× torch':>7}"
    )
    for name in timed:
        cells = []
        for times in (wall, cpu):
            m = {k: statistics.median(v) for k, v in times.items()}
            cells.append(
                f"{m[name]:7.3f} {m[name] / m['python -c pass']:7.1f} {m[name] / m['import torch']:7.2f}"
            )
        print(f"{name:<20} {cells[0]} {cells[1]}")


if __name__ == "__main__":
    main()
