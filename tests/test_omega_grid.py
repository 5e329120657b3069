"""Ω across a grid: compare's per-step frame → seed-mean accuracy per method and step, table and figure."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from steerbench.analysis.compare.omega_grid import omega_by_step, omega_figure, omega_table


def grid_frame() -> pd.DataFrame:
    """Two methods × two seeds; Ω logged at steps 2 and 4 (NaN elsewhere), as compare's load_runs returns."""
    rows = []
    values = {  # (method, seed) → pearson at steps 2, 4 for steer_release
        ("grpo", 0): (0.30, 0.10),
        ("grpo", 1): (0.50, 0.30),
        ("steer", 0): (0.40, 0.40),
        ("steer", 1): (0.20, 0.60),
    }
    for (method, seed), (p2, p4) in values.items():
        for step in range(1, 5):
            row = {"run": f"{method}__s{seed}", "scenario": "standard", "method": method, "variant": "",
                   "seed": seed, "step": step, "entropy/mean": 1.0 / step}  # fmt: skip
            if step in (2, 4):
                p = p2 if step == 2 else p4
                row |= {"omega/steer_release/pearson": p, "omega/steer_release/sign_agreement": 0.5 + p / 2}
                row |= {"omega/jvp/pearson": 0.99, "omega/jvp/spearman": 0.98}
            rows.append(row)
    return pd.DataFrame(rows)


def test_seed_means_per_method_and_step() -> None:
    by_step = omega_by_step(grid_frame())
    sr = by_step[by_step["estimator"] == "steer_release"].set_index(["method", "step"])
    assert sr.loc[("grpo", 2), "pearson"] == pytest.approx(0.40)
    assert sr.loc[("grpo", 4), "pearson"] == pytest.approx(0.20)
    assert sr.loc[("steer", 4), "sign_agreement"] == pytest.approx(0.75)
    assert set(sr["n"]) == {2} and sorted(by_step["step"].unique()) == [2, 4]
    jvp = by_step[by_step["estimator"] == "jvp"]
    assert jvp["pearson"].eq(0.99).all() and jvp["sign_agreement"].isna().all()  # only pearson logged


def test_table_reports_first_last_and_mean_over_training() -> None:
    table = omega_table(omega_by_step(grid_frame()))
    row = table[(table["method"] == "grpo") & (table["estimator"] == "steer_release")].iloc[0]
    assert row["steps"] == "2–4"
    assert (row["pearson first"], row["pearson last"]) == (pytest.approx(0.40), pytest.approx(0.20))
    assert row["pearson mean"] == pytest.approx(0.30)
    steer = table[(table["method"] == "steer") & (table["estimator"] == "steer_release")].iloc[0]
    assert steer["pearson last"] == pytest.approx(0.50) and not math.isnan(steer["sign agr. mean"])


def test_no_omega_columns_means_no_section(tmp_path: Path) -> None:
    frame = grid_frame().drop(columns=[c for c in grid_frame().columns if c.startswith("omega/")])
    by_step = omega_by_step(frame)
    assert by_step.empty and omega_table(by_step).empty
    assert omega_figure(by_step, tmp_path / "omega.png") is False and not (tmp_path / "omega.png").exists()


def test_figure_is_written(tmp_path: Path) -> None:
    assert omega_figure(omega_by_step(grid_frame()), tmp_path / "omega_vs_step.png")
    assert (tmp_path / "omega_vs_step.png").stat().st_size > 0


def test_compare_report_gains_the_omega_section_and_figure(tmp_path: Path) -> None:
    from steerbench.analysis.compare.report import write_report
    from steerbench.analysis.compare.runs import Runs

    frame = grid_frame().assign(task="add", status="done", backend="local")
    result = write_report(Runs(frame), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert (
        "### In-training Ω accuracy" in md
        and "| standard | grpo |  | steer_release | 2–4 | 0.4 | 0.2 | 0.3 | 0.7 | 0.6 | 0.65 |" in md
    )
    assert "omega_vs_step.png" in result["files"] and (tmp_path / "omega_vs_step.png").stat().st_size > 0
    assert "In-training Ω accuracy" in (tmp_path / "report.html").read_text()
