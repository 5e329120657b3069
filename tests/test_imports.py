"""The package's import structure: no cycles among steerbench's modules, a light command line."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from steerbench.errors import extra_providing
from steerbench.methods import catalog

ROOT = Path(__file__).resolve().parents[1]
# source folder → the package it installs as (pyproject's package-dir)
PACKAGE_DIRS = {
    "steerbench": "steerbench",
    "methods": "steerbench.methods",
    "analysis": "steerbench.analysis",
    "experiments": "steerbench.experiments",
}


def module_files() -> dict[str, Path]:
    """Dotted module name → source file, for every module steerbench installs."""
    found = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_statements(body: list, deferred: bool):
    """The import statements in ``body`` that run when the module is imported (module level, class
    bodies, module-level if/try/with/for branches), plus, with ``deferred``, those inside functions.
    ``if TYPE_CHECKING:`` blocks never run, so they never count."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from import_statements(node.orelse, deferred)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not deferred:
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                yield from import_statements(block, deferred)


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    """Module → the steerbench modules it imports at import time (with ``deferred``: also inside its
    functions). ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``;
    a parent package's ``__init__`` is not an edge (Python has it half-imported already when a
    submodule runs, so it cannot deadlock)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in import_statements(ast.parse(path.read_text(), str(path)).body, deferred):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto steerbench's subpackages (local, verl, methods, analysis, …);
    the top-level modules (cli, config, runner, …) are the hub that wires them and are left out."""
    files = module_files()

    def subpackage(module: str) -> str | None:
        package = module if files[module].name == "__init__.py" else module.rpartition(".")[0]
        return package if package != "steerbench" else None

    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if (source := subpackage(module)) is not None:
            folded.setdefault(source, set()).update(
                t for t in map(subpackage, targets) if t is not None and t != source
            )
    return folded


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a → … → a) per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph has ~60 nodes, recursion depth is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_through(graph, set(c), c[0]) for c in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """The shortest path start → … → start inside one component (breadth-first)."""
    parent: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while (up := parent[path[-1]]) is not None:
                        path.append(up)
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def test_graph_sees_the_package():
    graph = import_graph()
    assert "steerbench.methods.steer" in graph and "steerbench.analysis.omega.measure" in graph
    assert "steerbench.methods.batch" in graph["steerbench.methods.steer"]  # from … import MethodError
    assert "steerbench.methods.registry" in graph["steerbench.methods.steer"]
    # imports inside functions are edges only when asked for: the CLI loads each command's machinery lazily
    assert "steerbench.execute" not in graph["steerbench.commands.run"]
    assert "steerbench.execute" in import_graph(deferred=True)["steerbench.commands.run"]
    # a TYPE_CHECKING import never runs
    assert "steerbench.grid" not in import_graph(deferred=True)["steerbench.cell_launchers"]


def test_find_cycles_reports_a_cycle_as_a_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def _cycles_message(cycles: list[list[str]]) -> str:
    return "import cycles (cut one edge of each):\n" + "\n".join(" → ".join(c) for c in cycles)


def test_no_import_cycles_among_steerbench_modules():
    cycles = find_cycles(import_graph())
    assert not cycles, _cycles_message(cycles)


# Cycles through imports inside functions (legal Python, but two modules that need each other are one
# module in two files). Each entry is a known one, owned elsewhere, to cut; remove it once cut.
KNOWN_DEFERRED_CYCLES: list[list[str]] = []
KNOWN_SUBPACKAGE_CYCLES: list[list[str]] = []


def test_no_new_import_cycles_through_imports_inside_functions():
    cycles = find_cycles(import_graph(deferred=True))
    assert cycles == KNOWN_DEFERRED_CYCLES, (
        _cycles_message(cycles) + "\n(update KNOWN_DEFERRED_CYCLES only to remove)"
    )


def test_no_new_cycles_between_subpackages():
    cycles = find_cycles(subpackage_graph(import_graph(deferred=True)))
    assert cycles == KNOWN_SUBPACKAGE_CYCLES, (
        _cycles_message(cycles) + "\n(update KNOWN_SUBPACKAGE_CYCLES only to remove)"
    )


def test_the_two_analysis_pipelines_do_not_import_each_other():
    folded = subpackage_graph(import_graph(deferred=True))
    compare, omega = "steerbench.analysis.compare", "steerbench.analysis.omega"
    assert omega not in folded.get(compare, set()) and compare not in folded.get(omega, set())


# The one boundary where the project's own modules are imported inside functions: the CLI command
# modules, so that `steerbench --help` starts without torch (steerbench/cli.py says so).
LAZY_BOUNDARY = "steerbench/commands/"


def files_importing_the_project_inside_functions() -> set[str]:
    """Source files (relative to the repository) with a ``steerbench`` import inside a function."""
    found = set()
    for path in module_files().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for statement in import_statements(node.body, deferred=True):
                if isinstance(statement, ast.ImportFrom):  # a relative import is the project's own
                    modules = ["steerbench" if statement.level else statement.module or ""]
                else:
                    modules = [alias.name for alias in statement.names]
                if any(m.partition(".")[0] == "steerbench" for m in modules):
                    found.add(str(path.relative_to(ROOT)))
    return found


def test_the_projects_modules_are_imported_at_the_top_outside_the_cli_boundary():
    lazy = files_importing_the_project_inside_functions()
    outside = sorted(f for f in lazy if not f.startswith(LAZY_BOUNDARY))
    assert not outside, f"import steerbench modules at the top of these files: {outside}"


def _run_cli_fresh(*args: str) -> tuple[str, set[str]]:
    """``steerbench ARGS`` in a fresh interpreter: its stdout and the modules it imported."""
    script = (
        "import contextlib, io, json, sys\n"
        "from steerbench.cli import main\n"
        f"sys.argv = ['steerbench', *{list(args)!r}]\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    main()\n"
        "print(json.dumps({'out': out.getvalue(), 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    return result["out"], set(result["modules"])


# What a command imports only once it runs, never to register or list itself.
HEAVY_MODULES = {"torch", "numpy", "hydra", "pandas", "scipy", "matplotlib", "pyarrow", "omegaconf"}


def test_help_does_not_import_torch():
    out, loaded = _run_cli_fresh("--help")
    assert "methods" in out and "validate-omega" in out  # the commands are all registered
    assert not HEAVY_MODULES & loaded


def test_methods_command_prints_the_registrys_catalogue():
    out, _ = _run_cli_fresh("methods", "--json")
    assert json.loads(out) == json.loads(json.dumps(catalog()))


# Modules that only pip extras install (pyproject.toml); `steerbench run` must work without any of them.
OPTIONAL_MODULES = (
    "pandas",
    "pyarrow",
    "matplotlib",
    "scipy",
    "wandb",
    "ray",
    "submitit",
    "transformers",
    "verl",
)


def test_each_optional_module_names_the_extra_that_installs_it():
    assert [extra_providing(m) for m in ("scipy", "pandas", "wandb", "ray", "submitit", "verl")] == [
        "analysis",
        "analysis",
        "wandb",
        "ray",
        "slurm",
        "verl",
    ]
    assert extra_providing("pytest") == "dev"  # dev only when no narrower extra has it
    assert extra_providing("torch") is None and extra_providing("no_such_module") is None  # core / unknown


def _cli_without(modules: tuple[str, ...], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``steerbench ARGS`` in a fresh interpreter in which importing any of ``modules`` fails."""
    script = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({list(modules)!r}))\n"  # None: `import x` raises ModuleNotFoundError
        f"sys.argv = ['steerbench', *{list(args)!r}]\n"
        "from steerbench.cli import main\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd)


def test_run_and_grid_machinery_imports_without_any_extra():
    """Every project import sits at the top of its module, so importing what `run` and `grid` drive (both
    backends' launchers included) must not reach an extra: those stay inside the functions that need them."""
    script = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({list(OPTIONAL_MODULES)!r}))\n"
        "import steerbench.execute, steerbench.grid, steerbench.grid_worker, steerbench.verl.launch\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_missing_extra_is_a_usage_error_that_names_it(tmp_path):
    done = _cli_without(("scipy",), "compare", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "pip install 'steerbench[analysis]'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_needs_no_optional_extra(tmp_path):
    small = ["trainer.steps=1", "warm_start.steps=2", "trainer.prompts_per_step=4", "trainer.eval_prompts=4"]
    done = _cli_without(OPTIONAL_MODULES, "run", *small, "--out", str(tmp_path), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 1
