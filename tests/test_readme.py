"""The README's two commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_exactly_the_readme_test_command():
    setup, tests = readme_commands()[:2]
    assert "steerbench run" in setup and "pip install torch==2.13.0" in setup
    # no extras: tests/test_imports.py::test_run_needs_no_optional_extra runs the job without them
    assert "pip install -e . &&" in setup
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines, "the README's test command must appear verbatim in .ci/run"
    assert "pytest" in tests
