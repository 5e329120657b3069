"""steerbench compare: numbers against independent computations on hand-built run stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from compare_helpers import write_run
from scipy import stats as st

from steerbench.analysis.compare.design import t_interval
from steerbench.analysis.compare.plots import fit_cui
from steerbench.analysis.compare.report import write_report
from steerbench.analysis.compare.runs import load_runs
from steerbench.analysis.compare.summary import cell_summary, run_stats, steps_to_half
from steerbench.errors import UsageError


def halving_at_7() -> list[float]:
    # step 1: 1.0 ... step 6: 0.51, step 7: 0.5 (exactly half), then lower
    return [1.0, 0.9, 0.8, 0.7, 0.6, 0.51, 0.5, 0.45, 0.4, 0.35]


def grid_of_runs(root: Path) -> dict[str, list[list[float]]]:
    """grpo and steer in standard and extreme, 3 seeds; returns the entropy curves by cell."""
    rng = np.random.default_rng(0)
    curves: dict[str, list[list[float]]] = {}
    for seed in range(3):
        collapse = list(np.linspace(1.0, 0.2, 12) + rng.normal(0, 0.01, 12))
        steady = list(1.0 + 0.01 * rng.standard_normal(12))
        p = {4: 0.2 + 0.05 * seed, 8: 0.3 + 0.05 * seed, 12: 0.35 + 0.04 * seed}
        cells = {
            ("grpo", "standard"): (collapse, p),
            ("steer", "standard"): (steady, {k: v + 0.05 + 0.01 * seed for k, v in p.items()}),
            ("grpo", "extreme"): (list(np.linspace(1.0, 0.05, 12)), p),
            ("steer", "extreme"): (list(np.linspace(1.0, 0.7, 12) + 0.01 * seed), p),
        }
        for (method, scenario), (h, p1) in cells.items():
            write_run(root, method, scenario, seed, h, pass1=p1)
            curves.setdefault(f"{method}/{scenario}", []).append(h)
    return curves


def test_entropy_halving_step_is_the_first_step_at_half_the_start(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, halving_at_7())
    summary = cell_summary(load_runs([tmp_path]).frame)
    assert summary.loc[0, "steps_to_half_mean"] == 7
    assert summary.loc[0, "steps_to_half_n"] == 1
    assert np.isnan(steps_to_half([1, 2, 3], [1.0, 0.9, 0.8]))


def test_delta_falls_back_to_differences_of_entropy_when_not_logged(tmp_path):
    h = halving_at_7()
    run = write_run(tmp_path, "grpo", "standard", 0, h)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k != "entropy/delta"} for r in rows]
    eval_row = {"step": 0, "val/pass@1": 0.1}  # an eval-only row before training, as the trainer logs
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [eval_row, *rows]))
    row = run_stats(load_runs([tmp_path]).frame).iloc[0]
    assert row["dH_abs_p90"] == pytest.approx(np.percentile(np.abs(np.diff(h)), 90))
    assert row["steps_to_half"] == 7


def test_entropy_area_final_entropy_and_delta_quantiles_match_numpy(tmp_path):
    h = halving_at_7()
    write_run(tmp_path, "grpo", "standard", 0, h)
    row = run_stats(load_runs([tmp_path]).frame).iloc[0]
    d = np.abs(np.diff(h))  # step 1 has no predecessor; then h[t] - h[t-1]
    assert row["entropy_area"] == pytest.approx(np.mean(h))
    assert row["final_entropy"] == pytest.approx(h[-1])
    assert row["dH_abs_median"] == pytest.approx(np.median(d))
    assert row["dH_abs_p90"] == pytest.approx(np.percentile(d, 90))
    assert row["clip_low"] == pytest.approx(0.01) and row["clip_high"] == pytest.approx(0.02)
    assert row["time_s"] == pytest.approx(0.5 * len(h))


def test_cell_intervals_are_the_seeds_t_interval_and_stay_in_range(tmp_path):
    finals = [0.31, 0.42, 0.37, 1.0]
    for seed, f in enumerate(finals):
        write_run(tmp_path, "steer", "standard", seed, [1.0, 0.9, 0.8], pass1={2: 0.1, 3: f})
    row = cell_summary(load_runs([tmp_path]).frame).iloc[0]
    assert row["n_seeds"] == 4
    assert row["final_pass1_mean"] == pytest.approx(np.mean(finals))
    _, lo, hi, _ = t_interval(finals, 0.95, 0.0, 1.0)  # itself checked against scipy in test_compare_design
    assert (row["final_pass1_ci_low"], row["final_pass1_ci_high"]) == pytest.approx((lo, hi))
    # pass@k = min(1, pass@1 + 0.2): a seed at 1.0; the upper bound may touch 1 but never pass it
    assert 0 <= row["final_passk_ci_low"] <= row["final_passk_ci_high"] <= 1.0


def test_single_seed_has_a_mean_but_no_interval(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.8], pass1={2: 0.4})
    row = cell_summary(load_runs([tmp_path]).frame).iloc[0]
    assert row["final_pass1_mean"] == pytest.approx(0.4)
    assert np.isnan(row["final_pass1_ci_low"]) and np.isnan(row["final_pass1_ci_high"])


def test_damaged_and_repeated_metrics_lines_are_counted_not_silently_dropped(tmp_path):
    # a resumed run may re-log a step (the later row wins); a killed writer may leave half a line
    dup = json.dumps({"step": 3, "entropy/mean": 0.1}) + "\n" + "garbage\n" + '{"step": 4, "entropy/me'
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.9, 0.8], extra_lines=dup)
    runs = load_runs([tmp_path])
    assert runs.frame["step"].tolist() == [1, 2, 3]
    assert runs.frame.loc[runs.frame["step"] == 3, "entropy/mean"].item() == pytest.approx(0.1)
    (name,) = runs.damaged
    assert runs.damaged[name] == [5, 6]  # 3 rows, the re-logged step 3, then the two bad lines
    result = write_report(runs, tmp_path / "r")
    assert result["damaged"] == {name: [5, 6]}
    assert (
        f"{name}: 2 unreadable metrics.jsonl line(s) skipped (line 5, 6)."
        in (tmp_path / "r" / "report.md").read_text()
    )


def test_identity_comes_from_meta_json_not_the_folder_name(tmp_path):
    run = write_run(
        tmp_path / "a" / "b", "kl", "extreme", 4, [1.0, 0.5], with_summary=False, folder="kl__x__y__seed9"
    )
    meta = json.loads((run / "meta.json").read_text())
    meta["identity"]["variant"] = "method.beta=0.1"
    (run / "meta.json").write_text(json.dumps(meta))
    frame = load_runs([tmp_path]).frame
    got = frame[["method", "scenario", "task", "seed", "variant", "status"]].drop_duplicates().values.tolist()
    assert got == [["kl", "extreme", "arith", 4, "method.beta=0.1", "done"]]


def test_a_store_without_identity_is_named_in_the_report(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.8])
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "summary.json").write_text(json.dumps({"final": {"entropy/mean": 0.7}}))
    runs = load_runs([tmp_path])
    assert runs.unidentified == ["stray"] and runs.frame["run"].nunique() == 1
    write_report(runs, tmp_path / "r")
    assert (
        "Not read (no identity in meta.json, no config.yaml): stray."
        in (tmp_path / "r" / "report.md").read_text()
    )


def test_summary_only_store_contributes_its_final_numbers(tmp_path):
    run = write_run(tmp_path, "steer", "standard", 1, [0.9], task="math", with_summary=False)
    (run / "metrics.jsonl").unlink()
    summary = {"steps": 50, "final": {"entropy/mean": 0.7, "val/pass@1": 0.33}}
    (run / "summary.json").write_text(json.dumps(summary))
    row = cell_summary(load_runs([tmp_path]).frame).iloc[0]
    assert (row["method"], row["task"]) == ("steer", "math")
    assert row["final_pass1_mean"] == pytest.approx(0.33)
    assert row["final_entropy_mean"] == pytest.approx(0.7)


def test_runs_are_found_once_even_if_dirs_overlap_and_checkpoints_are_skipped(tmp_path):
    run = write_run(tmp_path / "g", "grpo", "standard", 0, [1.0, 0.9])
    (run / "checkpoints" / "latest").mkdir(parents=True)
    (run / "checkpoints" / "latest" / "summary.json").write_text("{}")
    frame = load_runs([tmp_path, tmp_path / "g", run]).frame
    assert frame["run"].nunique() == 1


def test_no_runs_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no run stores"):
        load_runs([tmp_path / "empty"])
    with pytest.raises(UsageError, match="not a directory"):
        load_runs([tmp_path / "missing"])


def test_cui_fit_recovers_a_and_b():
    h = np.linspace(0.1, 1.5, 30)
    a, b = fit_cui(h, -0.2 * np.exp(h) + 0.9)
    assert a == pytest.approx(0.2, rel=1e-6) and b == pytest.approx(0.9, rel=1e-6)


def test_findings_give_the_collapse_and_the_paired_effects_in_numbers(tmp_path):
    curves = grid_of_runs(tmp_path)
    # the grid declared final entropy its primary endpoint, in a family of the 2 steer comparisons
    family = {
        "name": "g: final_entropy",
        "primary": "final_entropy",
        "size": 2,
        "members": [],
        "degenerate": [],
    }
    (tmp_path / "grid.json").write_text(json.dumps({"design": {"family": family}}))
    result = write_report(load_runs([tmp_path]), tmp_path / "report")
    text = "\n".join(result["findings"])
    g = np.array(curves["grpo/standard"])
    h0, h1 = g[:, 0].mean(), g[:, -1].mean()
    assert (
        f"[standard] Under grpo, entropy goes from {h0:.3g} to {h1:.3g} ({100 * (1 - h1 / h0):.2g}% lower)"
        in text
    )
    # steer − grpo on final entropy, per seed, and its paired t-test, Holm over the 2 matched methods
    p_raw = {}
    diffs = {}
    for scen in ("standard", "extreme"):
        d = np.array(curves[f"steer/{scen}"])[:, -1] - np.array(curves[f"grpo/{scen}"])[:, -1]
        diffs[scen] = d
        p_raw[scen] = st.ttest_1samp(d, 0).pvalue
    lo_p, hi_p = sorted(p_raw.values())
    holm = {s: (2 * p if p == lo_p else max(2 * lo_p, p)) for s, p in p_raw.items()}
    for scen, d in diffs.items():
        ci = st.ttest_1samp(d, 0).confidence_interval(0.95)
        expect = (
            f"[{scen}] steer − grpo over 3 paired seeds: final entropy +{d.mean():.3g} "
            f"[{ci.low:.3g}, {ci.high:.3g}], Holm p = {min(1, holm[scen]):.3g}: "
        )
        assert expect in text, (expect, text)
        clear = holm[scen] < 0.05
        assert (expect + "clearly higher") in text if clear else (expect + "not clearly different") in text
    # extreme: steer and grpo log the same pass@1 in every seed; no spread is said, not tested
    assert "pass@1 0 in every seed; pass@k 0 in every seed." in text
    assert "steer's per-step |ΔH| 90th percentile" in text and "narrower band than every other" in text
    assert "ε_low=0.99" not in text  # clipping is read from configs, never written into a sentence
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Findings" in md and "entropy_vs_step.png" in md
    for name in result["files"]:
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert {"entropy_vs_step.png", "accuracy_vs_step.png", "dH_abs_box.png"} <= set(result["files"])
    assert {"clip_fractions.png", "entropy_accuracy.png"} <= set(result["files"])
    html = (tmp_path / "report" / "report.html").read_text()
    # the five figures and the forest plot of the verdict's first screen, embedded
    assert "forest.png" in result["files"]
    assert html.count("data:image/png;base64,") == 6 and 'src="http' not in html


def test_two_compare_runs_give_identical_bytes(tmp_path):
    grid_of_runs(tmp_path / "runs")
    write_report(load_runs([tmp_path / "runs"]), tmp_path / "r1")
    write_report(load_runs([tmp_path / "runs"]), tmp_path / "r2")
    for name in (
        "summary.csv",
        "runs.csv",
        "verdicts.csv",
        "report.md",
        "report.html",
        "entropy_vs_step.png",
    ):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steerbench.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_compare_writes_report_and_json(tmp_path):
    grid_of_runs(tmp_path / "runs")
    proc = _cli("compare", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert {(r["scenario"], r["method"]) for r in payload["summary"]} == {
        ("standard", "grpo"),
        ("standard", "steer"),
        ("extreme", "grpo"),
        ("extreme", "steer"),
    }
    assert {(v["scenario"], v["method"], v["matched"]) for v in payload["verdicts"]} == {
        ("standard", "steer", True),
        ("extreme", "steer", True),
    }
    assert (tmp_path / "rep" / "summary.csv").is_file()


def test_cli_compare_on_a_folder_without_runs_exits_2(tmp_path):
    proc = _cli("compare", str(tmp_path))
    assert proc.returncode == 2
    assert "no run stores" in proc.stderr


def test_swept_cells_and_repeated_grids_are_kept_apart(tmp_path):
    for lr, h in (("1e-4", 0.9), ("3e-4", 0.5)):
        write_run(tmp_path / "sweep", "steer", "standard", 0, [1.0, h], variant=f"trainer.lr={lr}")
    write_run(tmp_path / "a", "grpo", "standard", 0, [1.0, 0.8])
    write_run(tmp_path / "b", "grpo", "standard", 0, [1.0, 0.6])
    summary = cell_summary(load_runs([tmp_path]).frame)
    got = {(r["method"], r["variant"]): r["final_entropy_mean"] for _, r in summary.iterrows()}
    assert got == {
        ("grpo", "a"): pytest.approx(0.8),
        ("grpo", "b"): pytest.approx(0.6),
        ("steer", "trainer.lr=1e-4"): pytest.approx(0.9),
        ("steer", "trainer.lr=3e-4"): pytest.approx(0.5),
    }
    assert set(summary["n_seeds"]) == {1}


def test_unfinished_runs_are_left_out_unless_asked_for(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.8], folder="done0")
    write_run(
        tmp_path, "grpo", "standard", 1, [1.0, 0.2], with_summary=False, status="running", folder="part1"
    )
    result = write_report(load_runs([tmp_path]), tmp_path / "r")
    assert result["left_out"] == ["part1"]
    assert result["summary"].loc[0, "n_seeds"] == 1
    assert "Left out (not finished" in (tmp_path / "r" / "report.md").read_text()
    result = write_report(load_runs([tmp_path]), tmp_path / "r2", include_partial=True)
    assert result["summary"].loc[0, "n_seeds"] == 2 and result["left_out"] == []
    meta = json.loads((tmp_path / "done0" / "meta.json").read_text())
    (tmp_path / "done0" / "meta.json").write_text(json.dumps({**meta, "status": "failed"}))
    with pytest.raises(UsageError, match="none of the 2 runs has finished"):
        write_report(load_runs([tmp_path]), tmp_path / "r3")
