"""Start-up time of ``steerbench --help`` and ``steerbench methods`` against a bare interpreter.

Each command runs in a fresh interpreter, the commands interleaved round by round so that machine load
hits them alike; prints the median wall time and its ratio to ``python -c pass`` (and to
``import torch``, what the CLI used to pay before any command ran). ``--baseline PYTHON`` also times
both commands under another interpreter, e.g. a venv holding an older checkout. Nothing is asserted.

    python benchmarks/bench_startup.py [--rounds 7] [--baseline OTHER_VENV/bin/python]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def commands(baseline: str | None) -> dict[str, list[str]]:
    timed = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "steerbench --help": [sys.executable, "-m", "steerbench.cli", "--help"],
        "steerbench methods": [sys.executable, "-m", "steerbench.cli", "methods"],
    }
    if baseline:
        timed["baseline --help"] = [baseline, "-m", "steerbench.cli", "--help"]
        timed["baseline methods"] = [baseline, "-m", "steerbench.cli", "methods"]
    return timed


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", help="another interpreter with steerbench installed, timed alongside")
    args = parser.parse_args()
    rounds, timed = args.rounds, commands(args.baseline)
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, argv in timed.items():
            times[name].append(wall(argv))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"median of {rounds} rounds, each command in a fresh interpreter")
    print(f"{'command':<20} {'seconds':>8} {'× pass':>8} {'× torch':>8}")
    for name, seconds in median.items():
        print(
            f"{name:<20} {seconds:8.3f} {seconds / median['python -c pass']:8.1f} "
            f"{seconds / median['import torch']:8.2f}"
        )


if __name__ == "__main__":
    main()
