"""Every embedded task by name: the classic tasks (``tasks.py``), the long-tail suite (``tail.py``) and the text
tasks of a Hugging Face model (``text_tasks.py``), which bind to the model's tokenizer; and the task and
problem behind a row of ``steerbench data prepare``'s parquet (:func:`problem_from_row`), which verl's
reward (``steerbench.rewards``) verifies with the task's own verifier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from steerbench.errors import UsageError
from steerbench.tasks.core import TOKENIZER, AddTask, CountdownTask, Problem, Task
from steerbench.tasks.tail import StepsTask, TailCountdownTask
from steerbench.tasks.text import TEXT_TASKS, load_text_tokenizer

TASKS: dict[str, Callable[..., Task]] = {  # the synthetic tasks, with their own vocabularies
    "add": AddTask,
    "countdown": CountdownTask,
    "countdown_tail": TailCountdownTask,
    "steps": StepsTask,
}
ALL_TASKS: dict[str, Callable[..., Any]] = {**TASKS, **TEXT_TASKS}  # name → the dataclass of its knobs
DATA_SOURCE_PREFIX = "steerbench/"  # a prepared row's data_source: "steerbench/<task>"


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


def problem_from_row(data_source: str, ground_truth: str, extra_info: Any) -> tuple[Task, Problem]:
    """``(task, problem)`` rebuilt from a prepared row, for the task's own verifier.

    The verifiers read only the problem's prompt (countdown) or its reference answer (add), never the
    task's knobs, so the task is built with its defaults. Raises ValueError if the row is not ours.
    """
    raw = extra_info.get("raw_problem") if hasattr(extra_info, "get") else None
    if not isinstance(raw, str):
        raise ValueError(f"{data_source} row has no extra_info.raw_problem")
    try:
        task = get_task(data_source.removeprefix(DATA_SOURCE_PREFIX))
        prompt_ids = [TOKENIZER.bos_id, *TOKENIZER.encode(raw)]
    except UsageError as err:
        raise ValueError(str(err)) from err
    return task, Problem(raw, str(ground_truth), prompt_ids)
