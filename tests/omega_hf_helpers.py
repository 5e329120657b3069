"""The shared verl parquet files for tests, skipped with a reason when they are not mounted."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def shared_parquet(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared datasets are not mounted beside this checkout")
    return path
