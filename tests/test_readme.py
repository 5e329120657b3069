"""The README's two commands are the ones CI and users run, and they install through the locks."""

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def lock_pins(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    return {
        canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, flags=re.M)
    }


def test_ci_runs_exactly_the_readme_test_command():
    setup, tests = readme_commands()[:2]
    assert "steerbench run" in setup and "pip install torch==2.13.0" in setup
    # the run lock has no extras: tests/test_imports.py::test_run_needs_no_optional_extra runs the job without them
    assert "--require-hashes -r requirements/run.txt" in setup and "--no-deps -e ." in setup
    assert "--require-hashes -r requirements/test.txt" in tests and "--no-deps -e ." in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines, "the README's test command must appear verbatim in .ci/run"
    assert "pytest" in tests


def test_locks_pin_every_declared_requirement_within_its_range_and_agree():
    """Every requirement pyproject declares (base for run.txt; dev and verl, recursively, for test.txt) is
    pinned in its lock to a version its range admits; torch stays out (installed first, pinned); the run
    lock is a subset of the test lock at the same versions, so the second install moves nothing."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def declared(names: list[str]) -> list[Requirement]:
        out = []
        for name in names:
            for req in map(Requirement, extras[name]):
                out += declared(sorted(req.extras)) if req.name == "steerbench" else [req]
        return out

    run, test = lock_pins("run"), lock_pins("test")
    for lock, reqs in (
        (run, list(map(Requirement, project["dependencies"]))),
        (test, declared(["dev", "verl"])),
    ):
        for req in reqs:
            name = canonicalize_name(req.name)
            if name == "torch":
                assert name not in lock
                continue
            assert name in lock, f"{req} is not in the lock"
            assert req.specifier.contains(lock[name], prereleases=True), f"{req}: locked at {lock[name]}"
    assert len(test) > 100 and "kernels" not in test
    assert {n: v for n, v in test.items() if n in run} == run
