"""Every embedded task by name: the classic tasks (``tasks.py``), the long-tail suite (``tail.py``) and the text
tasks of a Hugging Face model (``text_tasks.py``), which bind to the model's tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from steerbench.errors import UsageError
from steerbench.tasks.core import AddTask, CountdownTask, Task
from steerbench.tasks.tail import StepsTask, TailCountdownTask
from steerbench.tasks.text import TEXT_TASKS, load_text_tokenizer

TASKS: dict[str, Callable[..., Task]] = {  # the synthetic tasks, with their own vocabularies
    "add": AddTask,
    "countdown": CountdownTask,
    "countdown_tail": TailCountdownTask,
    "steps": StepsTask,
}
ALL_TASKS: dict[str, Callable[..., Any]] = {**TASKS, **TEXT_TASKS}  # name → the dataclass of its knobs


def get_task(name: str, model_path: str | Path | None = None, **kwargs: Any) -> Task:
    """The task ``name`` with its knobs; a text task is bound to the tokenizer of the model at ``model_path``."""
    if name not in ALL_TASKS:
        raise UsageError(f"unknown task {name!r}; allowed: {', '.join(sorted(ALL_TASKS))}")
    try:
        task = ALL_TASKS[name](**kwargs)
    except TypeError as err:
        raise UsageError(f"bad parameters for task {name!r}: {err}") from err
    if name in TEXT_TASKS:
        return task.bind(load_text_tokenizer(name, model_path))  # type: ignore[no-any-return]
    return task  # type: ignore[no-any-return]
