"""How busy the machine was during a measurement, from /proc/stat (Linux; None elsewhere).

A benchmark on a shared machine is only as good as its quiet: with 2 OpenMP threads, another process
taking half the CPU slows a step 4–30× (spin-waits). `OtherLoad` measures the CPU time every process
on the machine used during a window, minus this process's own and its waited-for children's, as a share
of all cores' wall time; benchmarks print it next to their timings.
"""

from __future__ import annotations

import os
import resource
import time


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user/nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class OtherLoad:
    """`with OtherLoad() as load: ...` then `load.share`: other processes' CPU share of the window."""

    share: float | None = None

    def __enter__(self) -> OtherLoad:
        self._start = (_busy_seconds(), _own_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy0, own0, wall0 = self._start
        busy1 = _busy_seconds()
        if busy0 is None or busy1 is None:
            return
        wall = time.perf_counter() - wall0
        other = (busy1 - busy0) - (_own_seconds() - own0)
        self.share = max(0.0, other) / (wall * (os.cpu_count() or 1))


def describe(share: float | None) -> str:
    if share is None:
        return "other processes' CPU share: unknown (no /proc/stat)"
    quiet = "quiet" if share < 0.05 else "NOT quiet: ratios only, absolute times are inflated"
    return f"other processes' CPU share: {100 * share:.0f}% ({quiet})"
