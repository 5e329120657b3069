"""Bring a Ray job's verl metrics back to the submitting machine through the job's log stream.

On a Ray cluster the TaskRunner writes verl's file-logger JSONL on whichever node it runs, in the job's
working directory, which the submitting machine cannot see. After training (or a crash), the shimmed
TaskRunner prints every line of that file prefixed with :data:`MARKER`; Ray forwards actor output to the
job's logs, ``ray job submit`` (which waits) streams them, and :func:`collect` picks the lines back out
into the run's local ``verl_logs/attempt-NNN.jsonl``. Ray prefixes actor lines with ``(TaskRunner pid=…)``,
so the marker is searched anywhere in a line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MARKER = "STEERBENCH_VERL_METRICS "
ENV_VAR = "STEERBENCH_RELAY_METRICS"  # set (to 1) in the job's runtime env by the ray launcher


def relay_file(path: str | os.PathLike[str]) -> int:
    """Print each line of verl's file-logger output with the marker; returns the number of lines."""
    path = Path(path)
    if not path.exists():
        return 0
    count = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                print(MARKER + line.strip(), flush=True)
                count += 1
    return count


def collect(lines: Iterable[str]) -> list[str]:
    """The relayed metric lines (payload only, in order) among a job's log lines."""
    out = []
    for line in lines:
        at = line.find(MARKER)
        if at >= 0:
            out.append(line[at + len(MARKER) :].strip())
    return out
