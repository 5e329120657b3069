"""Grid throughput: 4 equal cells run serially (--jobs 1) vs two at a time (--jobs 2).

    python benchmarks/bench_grid.py [--steps 8] [--cells 4] [--jobs 2]

Both grids use the same small config and a warm-start cache filled beforehand, so the timings cover
process start, composition and RL steps only. Prints the wall times and the ratio jobs/serial
(target ≤ 0.6 on a 2-core machine: the pool overlaps process start-up and gives each cell its
share of the cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

SMALL = [
    "warm_start.steps=50",
    "trainer.prompts_per_step=8",
    "trainer.samples_per_prompt=8",
    "trainer.minibatches=2",
    "trainer.eval_prompts=16",
    "trainer.pass_k=4",
    "trainer.eval_every=1000",
    "trainer.checkpoint_every=1000",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        os.environ["STEERBENCH_CACHE"] = str(Path(tmp) / "cache")
        from steerbench.cell_launchers import cores
        from steerbench.grid import build_spec, run_grid

        seeds = ",".join(str(i) for i in range(args.cells))

        def grid(name: str, seeds: str):
            return build_spec(None, name=name, methods="grpo", seeds=seeds, steps=args.steps, overrides=SMALL)

        # fill the warm-start cache (shared by every cell: it does not depend on trainer.seed)
        run_grid(grid("warm", "0"), tmp, jobs=1, progress=False)

        timings = {}
        for jobs in (1, args.jobs):
            start = time.perf_counter()
            results = run_grid(grid(f"jobs{jobs}", seeds), tmp, jobs=jobs, progress=False)
            timings[jobs] = time.perf_counter() - start
            failed = [r for r in results if r.status != "done"]
            if failed:
                raise SystemExit(f"cells failed: {[(r.name, r.error) for r in failed]}")

    serial, parallel = timings[1], timings[args.jobs]
    print(
        f"machine: {platform.machine()}, {cores()} cores; {args.cells} cells × {args.steps} steps (grpo, small)"
    )
    print(f"{'launcher':<22}{'wall (s)':>10}")
    print(f"{'local --jobs 1':<22}{serial:>10.1f}")
    print(f"{f'local --jobs {args.jobs}':<22}{parallel:>10.1f}")
    print(f"ratio jobs{args.jobs}/serial: {parallel / serial:.2f} (target ≤ 0.6)")


if __name__ == "__main__":
    main()
