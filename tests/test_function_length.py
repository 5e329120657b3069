"""No function in steerbench/ or analysis/ is longer than a screen (80 lines, signature and docstring
included): a longer one is several steps that want names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80


def long_functions(root: Path = ROOT) -> dict[tuple[str, str], int]:
    """(file, function) → its length in lines, for every function over ``MAX_LINES``."""
    found = {}
    for folder in ("steerbench", "analysis"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_LINES:
                        found[(str(path.relative_to(root)), node.name)] = length
    return found


def test_no_function_is_longer_than_a_screen():
    new = long_functions()
    assert not new, f"functions over {MAX_LINES} lines (split them into named steps): {new}"


def test_the_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "steerbench").mkdir()
    (tmp_path / "steerbench" / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(tmp_path) == {("steerbench/long.py", "long"): MAX_LINES + 1}
