"""The embedded tasks (``add``, ``countdown``) as verl-format parquet, for ``steerbench data prepare``.

One row per problem, in the schema of the shared verl datasets (``gsm8k_test``, ``math500``, ...), so
verl's ``RLHFDataset`` reads it unchanged::

    data_source   "steerbench/<task>"           (selects the task's own verifier in steerbench.rewards)
    prompt        [{"content": ..., "role": "user"}]   asks for the answer in \\boxed{}
    ability       "arithmetic"
    reward_model  {"ground_truth": <a reference answer>, "style": "rule"}
    extra_info    {"index": i, "raw_problem": <the task's own prompt, e.g. "0347+0918=">, "split": ...}

The reward rebuilds the problem from ``raw_problem`` and ``ground_truth``
(:func:`steerbench.tasks.registry.problem_from_row`) and calls the task's verifier, so ``countdown``
accepts every correct expression, not only the reference.
Files are written atomically (temporary file + ``os.replace``) and are byte-identical for a seed.
"""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steerbench.errors import UsageError
from steerbench.runstore import atomic_write
from steerbench.tasks.registry import DATA_SOURCE_PREFIX, TASKS, get_task

# How each task's prompt is put to a chat model; "{problem}" is the task's own prompt text.
INSTRUCTIONS = {
    "add": "Add the two zero-padded numbers: {problem}",
    "countdown": (
        "Numbers, target: {problem} Write an arithmetic expression that uses each number exactly once, "
        "with + - * and brackets, and equals the target."
    ),
}
REVERSED_NOTE = " Write the sum's digits least-significant first."
BOXED_NOTE = "\n\nPut your final answer within \\boxed{}."


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
            (
                "extra_info",
                pa.struct([("index", pa.int64()), ("raw_problem", pa.string()), ("split", pa.string())]),
            ),
        ]
    )


@dataclass(frozen=True)
class PrepareSpec:
    task: str  # embedded task name (steerbench.tasks.core.TASKS)
    out: Path  # output directory: train.parquet, val.parquet
    train_size: int = 10000  # training rows
    val_size: int = 500  # validation rows
    seed: int = 0  # problems are a pure function of (task, task_kwargs, seed)
    task_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_task_args(task: str, items: list[str]) -> dict[str, Any]:
    """``["digits=1", "reverse=true"]`` → ``{"digits": 1, "reverse": True}``, typed by the task's fields."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; allowed: {', '.join(sorted(TASKS))}")
    cls = TASKS[task]
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise UsageError(f"--task-arg {item!r} is not KEY=VALUE (e.g. --task-arg digits=1)")
        if key not in fields:
            raise UsageError(f"task {task!r} has no parameter {key!r}; allowed: {', '.join(sorted(fields))}")
        out[key] = _coerce(task, key, raw, fields[key])
    return out


def _coerce(task: str, key: str, raw: str, kind: type) -> Any:
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"--task-arg {key}={raw!r}: {task}.{key} is a boolean; use true or false")
    try:
        return kind(raw)
    except ValueError:
        raise UsageError(
            f"--task-arg {key}={raw!r}: {task}.{key} must be {kind.__name__}, e.g. {key}=2"
        ) from None


def chat_prompt(task_name: str, problem_text: str, task_kwargs: dict[str, Any]) -> str:
    text = INSTRUCTIONS[task_name].format(problem=problem_text)
    if task_name == "add" and task_kwargs.get("reverse"):
        text += REVERSED_NOTE
    return text + BOXED_NOTE


def build_rows(spec: PrepareSpec) -> dict[str, list[dict[str, Any]]]:
    """``{"train": rows, "val": rows}``: train then val drawn from one generator seeded with ``spec.seed``.

    Problems are drawn independently, so val may repeat a training prompt when the task is small
    (``add`` with ``digits=1`` has only 100 distinct problems).
    """
    task = get_task(spec.task, **spec.task_kwargs)
    generator = torch.Generator().manual_seed(spec.seed)
    rows: dict[str, list[dict[str, Any]]] = {}
    for split, n in (("train", spec.train_size), ("val", spec.val_size)):
        rows[split] = [
            {
                "data_source": DATA_SOURCE_PREFIX + spec.task,
                "prompt": [{"content": chat_prompt(spec.task, p.prompt, spec.task_kwargs), "role": "user"}],
                "ability": "arithmetic",
                "reward_model": {"ground_truth": p.answer, "style": "rule"},
                "extra_info": {"index": i, "raw_problem": p.prompt, "split": split},
            }
            for i, p in enumerate(task.sample_problems(n, generator))
        ]
    return rows


def _write_atomic(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=_schema())
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def prepare(spec: PrepareSpec) -> dict[str, Path]:
    """Write ``train.parquet`` and ``val.parquet`` under ``spec.out``; returns split → path."""
    for name, n in (("--train-size", spec.train_size), ("--val-size", spec.val_size)):
        if n <= 0:
            raise UsageError(f"{name} must be a positive number of rows, got {n}")
    rows = build_rows(spec)  # validates the task and its kwargs before anything touches the disk
    try:
        spec.out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=spec.out, prefix=".write-probe.")  # noqa: SIM115
        probe.close()
    except OSError as err:
        raise UsageError(
            f"cannot write to --out {str(spec.out)!r} ({err.strerror or err}); pick a writable directory"
        ) from None
    paths = {}
    for split, split_rows in rows.items():
        paths[split] = spec.out / f"{split}.parquet"
        _write_atomic(split_rows, paths[split])
    return paths
