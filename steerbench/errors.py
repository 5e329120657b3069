"""Errors the CLI turns into clear messages and exit codes (2: usage, 1: failed run), and the pip extra
to name when a command needs a module that only an extra installs."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, requires


class UsageError(ValueError):
    """Bad input from the user: unknown name or key, out-of-range value, malformed file. Exit code 2."""


class RunFailed(RuntimeError):
    """A run started but could not finish (NaN loss, crash); recorded as failed. Exit code 1."""


def extra_providing(module: str) -> str | None:
    """The pip extra of steerbench that installs ``module`` (from the installed metadata, so
    pyproject.toml stays the one list); None if no extra does. ``dev`` only if nothing narrower."""
    try:
        requirements = requires("steerbench") or []
    except PackageNotFoundError:
        return None
    extras = []
    for requirement in requirements:
        name, _, marker = requirement.partition(";")
        extra = re.search(r"extra == \"([^\"]+)\"", marker)
        if extra and re.split(r"[\[<>=!~ ]", name.strip(), maxsplit=1)[0].replace("-", "_") == module:
            extras.append(extra.group(1))
    return min(extras, key=lambda e: e == "dev", default=None)
