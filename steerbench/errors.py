"""Errors the CLI turns into clear messages and exit codes (2: usage, 1: failed run)."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: unknown name or key, out-of-range value, malformed file. Exit code 2."""


class RunFailed(RuntimeError):
    """A run started but could not finish (NaN loss, crash); recorded as failed. Exit code 1."""
