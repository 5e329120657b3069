"""Every embedded task by name: the classic tasks (``tasks.py``) and the long-tail suite (``tail.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from steerbench.errors import UsageError
from steerbench.local.tail import StepsTask, TailCountdownTask
from steerbench.local.tasks import AddTask, CountdownTask, Task

TASKS: dict[str, Callable[..., Task]] = {
    "add": AddTask,
    "countdown": CountdownTask,
    "countdown_tail": TailCountdownTask,
    "steps": StepsTask,
}


def get_task(name: str, **kwargs: Any) -> Task:
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")
    try:
        return TASKS[name](**kwargs)
    except TypeError as err:
        raise UsageError(f"bad parameters for task {name!r}: {err}") from err
