"""Run the ``steerbench`` CLI in this process (fast enough for property tests), as ``main`` would."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def invoke(*args: str) -> Result:
    """``steerbench ARGS`` through ``steerbench.cli.main``: its exit code and output; an exception that
    escapes ``main`` (a traceback for a user) propagates to the test."""
    from steerbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv, columns = sys.argv, os.environ.get("COLUMNS")
    sys.argv, os.environ["COLUMNS"] = ["steerbench", *args], "200"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return Result(code, out.getvalue(), err.getvalue())
