"""steerbench compare: numbers against independent computations on hand-built run stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as st

from steerbench.analysis.compare import load_runs, run_stats, steps_to_half, summarise, write_report
from steerbench.analysis.plots import fit_cui
from steerbench.errors import UsageError


def write_run(
    root: Path,
    method: str,
    scenario: str,
    seed: int,
    entropy: list[float],
    *,
    task: str = "arith",
    pass1: dict[int, float] | None = None,
    clip: tuple[float, float] = (0.01, 0.02),
    with_summary: bool = True,
    extra_lines: str = "",
) -> Path:
    """A run store as the runner writes it: config.yaml, meta.json, metrics.jsonl, summary.json."""
    run = root / f"{method}__{scenario}__{task}__seed{seed}"
    run.mkdir(parents=True)
    cfg = {
        "method": {"name": method},
        "scenario": {"name": scenario},
        "task": {"name": task},
        "trainer": {"seed": seed, "steps": len(entropy)},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "meta.json").write_text(json.dumps({"status": "done"}))
    lines = []
    prev = None
    for step, h in enumerate(entropy, start=1):
        row = {
            "step": step,
            "entropy/mean": h,
            "entropy/delta": 0.0 if prev is None else h - prev,
            "reward/mean": 0.5,
            "acc/train": 0.5,
            "clip/frac_low": clip[0],
            "clip/frac_high": clip[1],
            "kl/approx_old": 0.0,
            "time/step_s": 0.5,
            "throughput/tokens_per_s": 100.0,
        }
        if pass1 and step in pass1:
            row["val/pass@1"] = pass1[step]
            row["val/pass@k"] = min(1.0, pass1[step] + 0.2)
        lines.append(json.dumps(row))
        prev = h
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + extra_lines)
    if with_summary:
        summary = {"method": method, "scenario": scenario, "task": task, "seed": seed, "steps": len(entropy)}
        summary["final"] = {"entropy/mean": entropy[-1]}
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def halving_at_7() -> list[float]:
    # step 1: 1.0 ... step 6: 0.51, step 7: 0.5 (exactly half), then lower
    return [1.0, 0.9, 0.8, 0.7, 0.6, 0.51, 0.5, 0.45, 0.4, 0.35]


def grid_of_runs(root: Path) -> None:
    rng = np.random.default_rng(0)
    for seed in range(3):
        collapse = list(np.linspace(1.0, 0.2, 12) + rng.normal(0, 0.01, 12))
        steady = list(1.0 + 0.01 * rng.standard_normal(12))
        p = {4: 0.2 + 0.05 * seed, 8: 0.3 + 0.05 * seed, 12: 0.35 + 0.04 * seed}
        write_run(root, "grpo", "standard", seed, collapse, pass1=p)
        write_run(root, "steer", "standard", seed, steady, pass1={k: v + 0.05 for k, v in p.items()})
        write_run(root, "grpo", "extreme", seed, list(np.linspace(1.0, 0.05, 12)), pass1=p)
        write_run(root, "steer", "extreme", seed, list(np.linspace(1.0, 0.7, 12)), pass1=p)


def test_entropy_halving_step_is_the_first_step_at_half_the_start(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, halving_at_7())
    summary = summarise(load_runs([tmp_path]))
    assert summary.loc[0, "steps_to_half_mean"] == 7
    assert summary.loc[0, "steps_to_half_n"] == 1
    assert steps_to_half([1, 2, 3], [1.0, 0.9, 0.8]) != steps_to_half([1, 2, 3], [1.0, 0.9, 0.8])  # NaN


def test_delta_falls_back_to_differences_of_entropy_when_not_logged(tmp_path):
    h = halving_at_7()
    run = write_run(tmp_path, "grpo", "standard", 0, h)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k != "entropy/delta"} for r in rows]
    eval_row = {"step": 0, "val/pass@1": 0.1}  # an eval-only row before training, as the trainer logs
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [eval_row, *rows]))
    row = run_stats(load_runs([tmp_path])).iloc[0]
    assert row["dH_abs_p90"] == pytest.approx(np.percentile(np.abs(np.diff(h)), 90))
    assert row["steps_to_half"] == 7


def test_entropy_area_final_entropy_and_delta_quantiles_match_numpy(tmp_path):
    h = halving_at_7()
    write_run(tmp_path, "grpo", "standard", 0, h)
    row = run_stats(load_runs([tmp_path])).iloc[0]
    d = np.abs(np.diff(h))  # step 1 has no predecessor; then h[t] - h[t-1]
    assert row["entropy_area"] == pytest.approx(np.mean(h))
    assert row["final_entropy"] == pytest.approx(h[-1])
    assert row["dH_abs_median"] == pytest.approx(np.median(d))
    assert row["dH_abs_p90"] == pytest.approx(np.percentile(d, 90))
    assert row["clip_low"] == pytest.approx(0.01) and row["clip_high"] == pytest.approx(0.02)
    assert row["time_s"] == pytest.approx(0.5 * len(h))


def test_ci_over_seeds_is_the_scipy_t_interval(tmp_path):
    finals = [0.31, 0.42, 0.37, 0.5]
    for seed, f in enumerate(finals):
        write_run(tmp_path, "steer", "standard", seed, [1.0, 0.9, 0.8], pass1={2: 0.1, 3: f})
    row = summarise(load_runs([tmp_path])).iloc[0]
    lo, hi = st.t.interval(0.95, len(finals) - 1, loc=np.mean(finals), scale=st.sem(finals))
    assert row["n_seeds"] == 4
    assert row["final_pass1_mean"] == pytest.approx(np.mean(finals))
    assert row["final_pass1_ci_low"] == pytest.approx(lo)
    assert row["final_pass1_ci_high"] == pytest.approx(hi)
    assert row["final_passk_mean"] == pytest.approx(np.mean(finals) + 0.2)


def test_single_seed_has_a_mean_but_no_interval(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.8], pass1={2: 0.4})
    row = summarise(load_runs([tmp_path])).iloc[0]
    assert row["final_pass1_mean"] == pytest.approx(0.4)
    assert np.isnan(row["final_pass1_ci_low"]) and np.isnan(row["final_pass1_ci_high"])


def test_torn_last_line_and_repeated_steps_are_tolerated(tmp_path):
    # a resumed run may re-log a step (the later row wins); a killed writer may leave half a line
    dup = json.dumps({"step": 3, "entropy/mean": 0.1}) + "\n" + '{"step": 4, "entropy/me'
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.9, 0.8], extra_lines=dup)
    frame = load_runs([tmp_path])
    assert frame["step"].tolist() == [1, 2, 3]
    assert frame.loc[frame["step"] == 3, "entropy/mean"].item() == pytest.approx(0.1)


def test_identity_comes_from_config_when_there_is_no_summary(tmp_path):
    write_run(tmp_path / "a" / "b", "kl", "extreme", 4, [1.0, 0.5], with_summary=False)
    frame = load_runs([tmp_path])
    assert frame[["method", "scenario", "task", "seed", "status"]].drop_duplicates().values.tolist() == [
        ["kl", "extreme", "arith", 4, "done"]
    ]


def test_summary_only_store_contributes_its_final_numbers(tmp_path):
    run = tmp_path / "verl_run"
    run.mkdir()
    summary = {"method": "steer", "scenario": "standard", "task": "math", "seed": 1, "steps": 50}
    summary["final"] = {"entropy/mean": 0.7, "val/pass@1": 0.33}
    (run / "summary.json").write_text(json.dumps(summary))
    row = summarise(load_runs([tmp_path])).iloc[0]
    assert (row["method"], row["task"]) == ("steer", "math")
    assert row["final_pass1_mean"] == pytest.approx(0.33)
    assert row["final_entropy_mean"] == pytest.approx(0.7)


def test_runs_are_found_once_even_if_dirs_overlap_and_checkpoints_are_skipped(tmp_path):
    run = write_run(tmp_path / "g", "grpo", "standard", 0, [1.0, 0.9])
    (run / "checkpoints" / "latest").mkdir(parents=True)
    (run / "checkpoints" / "latest" / "summary.json").write_text("{}")
    frame = load_runs([tmp_path, tmp_path / "g", run])
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


def test_findings_state_collapse_survivors_steer_band_and_extreme_clipping(tmp_path):
    grid_of_runs(tmp_path)
    result = write_report(load_runs([tmp_path]), tmp_path / "report")
    text = "\n".join(result["findings"])
    assert "[standard] Under grpo, entropy goes from" in text and "it collapses" in text
    assert "Methods ending with higher entropy than grpo" in text and "steer (" in text
    assert "steer's per-step |ΔH| 90th percentile" in text and "narrower band than every other" in text
    assert "Extreme clipping (ε_low=0.99, ε_high=5) vs standard" in text
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Findings" in md and "entropy_vs_step.png" in md
    for name in result["files"]:
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert {"entropy_vs_step.png", "accuracy_vs_step.png", "dH_abs_box.png"} <= set(result["files"])
    assert {"clip_fractions.png", "entropy_accuracy.png"} <= set(result["files"])
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and 'src="http' not in html


def test_two_compare_runs_give_identical_bytes(tmp_path):
    grid_of_runs(tmp_path / "runs")
    write_report(load_runs([tmp_path / "runs"]), tmp_path / "r1")
    write_report(load_runs([tmp_path / "runs"]), tmp_path / "r2")
    for name in ("summary.csv", "runs.csv", "report.md", "report.html", "entropy_vs_step.png"):
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
    assert (tmp_path / "rep" / "summary.csv").is_file()


def test_cli_compare_on_a_folder_without_runs_exits_2(tmp_path):
    proc = _cli("compare", str(tmp_path))
    assert proc.returncode == 2
    assert "no run stores" in proc.stderr


def test_swept_cells_and_repeated_grids_are_kept_apart(tmp_path):
    for lr, h in (("1e-4", 0.9), ("3e-4", 0.5)):
        run = write_run(tmp_path / "sweep", "steer", "standard", 0, [1.0, h])
        run.rename(run.with_name(run.name + f"__lr={lr}"))
    write_run(tmp_path / "a", "grpo", "standard", 0, [1.0, 0.8])
    write_run(tmp_path / "b", "grpo", "standard", 0, [1.0, 0.6])
    summary = summarise(load_runs([tmp_path]))
    got = {(r["method"], r["variant"]): r["final_entropy_mean"] for _, r in summary.iterrows()}
    assert got == {
        ("grpo", "a"): pytest.approx(0.8),
        ("grpo", "b"): pytest.approx(0.6),
        ("steer", "sweep/lr=1e-4"): pytest.approx(0.9),
        ("steer", "sweep/lr=3e-4"): pytest.approx(0.5),
    }
    assert set(summary["n_seeds"]) == {1}


def test_unfinished_runs_are_left_out_unless_asked_for(tmp_path):
    write_run(tmp_path, "grpo", "standard", 0, [1.0, 0.8])
    partial = write_run(tmp_path, "grpo", "standard", 1, [1.0, 0.2], with_summary=False)
    (partial / "meta.json").write_text(json.dumps({"status": "running"}))
    result = write_report(load_runs([tmp_path]), tmp_path / "r")
    assert result["left_out"] == ["grpo__standard__arith__seed1"]
    assert result["summary"].loc[0, "n_seeds"] == 1
    assert "Left out (not finished" in (tmp_path / "r" / "report.md").read_text()
    result = write_report(load_runs([tmp_path]), tmp_path / "r2", include_partial=True)
    assert result["summary"].loc[0, "n_seeds"] == 2 and result["left_out"] == []
    (tmp_path / "grpo__standard__arith__seed0" / "meta.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(UsageError, match="none of the 2 runs has finished"):
        write_report(load_runs([tmp_path]), tmp_path / "r3")


def test_swept_variants_are_compared_with_plain_grpo():
    import pandas as pd

    from steerbench.analysis.compare import variants_vs_grpo

    rows = [
        {
            "task": "add",
            "scenario": "standard",
            "method": "grpo",
            "variant": "",
            "final_entropy_mean": 0.14,
            "final_entropy_ci_low": 0.13,
            "final_entropy_ci_high": 0.15,
        },
        {
            "task": "add",
            "scenario": "standard",
            "method": "entropy_bonus",
            "variant": "alpha=0.2",
            "final_entropy_mean": 0.30,
            "final_entropy_ci_low": 0.28,
            "final_entropy_ci_high": 0.32,
        },
        {
            "task": "add",
            "scenario": "standard",
            "method": "steer",
            "variant": "lambda_min=0.5",
            "final_entropy_mean": 0.145,
            "final_entropy_ci_low": 0.12,
            "final_entropy_ci_high": 0.17,
        },
    ]
    lines = variants_vs_grpo(pd.DataFrame(rows))
    assert lines == [
        "[standard] entropy_bonus (alpha=0.2) ends at entropy 0.3 [0.28, 0.32] vs grpo 0.14: clearly higher.",
        "[standard] steer (lambda_min=0.5) ends at entropy 0.145 [0.12, 0.17] vs grpo 0.14: not clearly higher.",
    ]
