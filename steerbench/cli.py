"""The ``steerbench`` command line. Each subcommand lives in ``steerbench/commands/<name>.py``.

The one place the project imports its own modules inside functions: a command module
(``steerbench/commands/``) imports only typer, rich and the standard library at module level and does
its real imports (torch, Hydra, pandas, the trainer, the backends) inside the command function, so
``steerbench --help`` starts without torch (tests/test_imports.py checks it). Every other module
imports at its top.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console
from rich.markup import escape

import steerbench.commands as commands
from steerbench.errors import RunFailed, UsageError, extra_providing

app = typer.Typer(
    name="steerbench",
    help="Compare entropy interventions for RLVR (GRPO) under identical settings, and validate Ω.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """steerbench: entropy interventions for RLVR, compared under identical settings."""


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"steerbench.commands.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    try:
        app()  # standalone: click prints its own usage errors and exits 2
    except UsageError as exc:  # MethodError (bad method name or knob) is a UsageError too
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except ModuleNotFoundError as exc:
        extra = extra_providing((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        err.print(
            f"[bold red]error:[/] this command needs {exc.name}: "
            + escape(f"pip install 'steerbench[{extra}]'")
        )
        sys.exit(2)
    except RunFailed as exc:
        err.print(f"[bold red]run failed:[/] {escape(str(exc))}")
        sys.exit(1)


if __name__ == "__main__":
    main()
