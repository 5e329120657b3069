"""Positive controls: the verdict logic on synthetic runs with a known effect and with none."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from steerbench.analysis.compare.controls import evaluate_controls, paired_test, write_controls


def run_rows(method: str, scenario: str, seed: int, h_end: float, passk: tuple, pass1: tuple) -> list[dict]:
    """A two-evaluation run: step 0 (warm start) and step 10 (end)."""
    ident = {
        "run": f"{method}__{scenario}__t__seed{seed}",
        "task": "t",
        "variant": "",
        "method": method,
        "scenario": scenario,
        "seed": seed,
        "status": "done",
    }
    return [
        {**ident, "step": 0, "entropy/mean": math.nan, "val/pass@k": passk[0], "val/pass@1": pass1[0]},
        {**ident, "step": 5, "entropy/mean": 1.0},
        {**ident, "step": 10, "entropy/mean": h_end, "val/pass@k": passk[1], "val/pass@1": pass1[1]},
    ]


def frame(bonus_shift: list[float], kl_drift: list[float], random_rise: list[float]) -> pd.DataFrame:
    """grpo ends at entropy 0.4 + seed noise, pass@k 0.8 → 0.5, pass@1 0.1 → 0.3 on every seed."""
    rows = []
    for seed, (shift, drift, rise) in enumerate(zip(bonus_shift, kl_drift, random_rise, strict=True)):
        noise = 0.01 * seed
        rows += run_rows("grpo", "standard", seed, 0.4 + noise, (0.8, 0.5), (0.1, 0.3))
        rows += run_rows("entropy_bonus", "standard", seed, 0.4 + noise + shift, (0.8, 0.5), (0.1, 0.3))
        rows += run_rows("kl", "standard", seed, 0.4, (0.8, 0.8 - drift), (0.1, 0.3))
        rows += run_rows("grpo", "random_reward", seed, 0.4, (0.8, 0.5), (0.1, 0.1 + rise))
        rows += run_rows("entropy_bonus", "random_reward", seed, 0.4 + shift, (0.8, 0.5), (0.1, 0.1))
        rows += run_rows("kl", "random_reward", seed, 0.4, (0.8, 0.8 - drift), (0.1, 0.1))
    return pd.DataFrame(rows)


def by_name(results: list[dict]) -> dict[str, dict]:
    return {r["control"]: r for r in results}


def test_paired_test_matches_hand_computed_t_interval() -> None:
    # d = (0.1, 0.2, 0.3): mean 0.2, sd 0.1, se 0.1/√3; t = 2√3 = 3.4641 on 2 df
    mean, low, high, p = paired_test(np.array([0.1, 0.2, 0.3]))
    se = 0.1 / math.sqrt(3)
    assert mean == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.2 - 4.302653 * se, 0.2 + 4.302653 * se), rel=1e-6)
    # two-sided p of t = 2√3 with 2 df: 1 − t/√(t² + 2) = 1 − √(12/14) (the t(2) CDF in closed form)
    assert p == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-9)


def test_paired_test_needs_two_seeds_and_handles_identical_differences() -> None:
    mean, low, high, p = paired_test(np.array([0.3]))
    assert mean == 0.3 and math.isnan(low) and math.isnan(high) and math.isnan(p)
    assert paired_test(np.array([0.25, 0.25, 0.25]))[3] == 0.0
    assert paired_test(np.array([0.0, 0.0]))[3] == 1.0


def test_known_effects_are_detected_with_their_size() -> None:
    results = by_name(evaluate_controls(frame([0.5, 0.52, 0.48], [0.05, 0.02, 0.04], [0.0, 0.01, -0.01])))
    bonus, kl, rnd = results["entropy_bonus"], results["kl"], results["random_reward"]
    assert bonus["effect"] == pytest.approx(0.5) and bonus["verdict"] == "detected"
    assert bonus["seeds"] == [0, 1, 2] and bonus["ci_low"] > 0
    # kl drifts 0.05/0.02/0.04 from the warm start's pass@k, grpo 0.3: effect −0.2633
    assert kl["effect"] == pytest.approx(np.mean([0.05, 0.02, 0.04]) - 0.3) and kl["verdict"] == "detected"
    # random reward rises 0.0/0.01/−0.01 vs grpo's 0.2
    assert rnd["effect"] == pytest.approx(-0.2) and rnd["verdict"] == "detected"
    assert rnd["treatment_mean"] == pytest.approx(0.0) and rnd["reference_mean"] == pytest.approx(0.2)
    assert results["entropy_bonus_random_reward"]["verdict"] == "detected"
    assert results["kl_random_reward"]["verdict"] == "detected"


def test_no_effect_is_not_detected() -> None:
    # the bonus matches grpo on average, kl drifts as far as grpo, random reward rises like grpo
    results = by_name(evaluate_controls(frame([0.05, -0.05, 0.0], [0.3, 0.32, 0.28], [0.22, 0.18, 0.2])))
    assert {r["verdict"] for r in results.values()} == {"not detected"}
    assert results["entropy_bonus"]["p_value"] == pytest.approx(1.0)


def test_an_effect_in_the_wrong_direction_is_not_detected() -> None:
    results = by_name(evaluate_controls(frame([-0.5, -0.52, -0.48], [0.3] * 3, [0.2] * 3)))
    assert (
        results["entropy_bonus"]["p_value"] < 0.01 and results["entropy_bonus"]["verdict"] == "not detected"
    )


def test_a_noisy_effect_with_three_seeds_is_not_detected() -> None:
    # mean 0.2 but t = 3.46 on 2 df: p = 0.074 > 0.05
    results = by_name(evaluate_controls(frame([0.1, 0.2, 0.3], [0.3] * 3, [0.2] * 3)))
    assert results["entropy_bonus"]["verdict"] == "not detected"
    assert results["entropy_bonus"]["p_value"] == pytest.approx(0.0742, abs=1e-3)


def test_only_controls_with_both_cells_are_reported_and_json_is_written(tmp_path) -> None:
    f = frame([0.5, 0.5], [0.0, 0.0], [0.0, 0.0])
    results = evaluate_controls(f[f["method"] != "kl"])
    assert [r["control"] for r in results] == [
        "entropy_bonus",
        "entropy_bonus_random_reward",
        "random_reward",
    ]
    assert write_controls(results, tmp_path) == "controls.json"
    saved = json.loads((tmp_path / "controls.json").read_text())
    assert [r["verdict"] for r in saved] == [r["verdict"] for r in results]
    assert write_controls([], tmp_path / "none") is None and not (tmp_path / "none").exists()


CONTROL_DOSE = {"entropy_bonus": {"alpha": 0.05}, "kl": {"beta": 0.05}}  # experiments/method/control_*.yaml


def write_store(
    root, method: str, scenario: str, seed: int, rows: list[dict], suffix: str = "", knobs: dict | None = None
) -> None:
    """A finished run store as steerbench.execute writes it (config.yaml, meta.json, metrics.jsonl), at the
    control's dose unless ``knobs`` says otherwise."""
    run = root / f"{method}__{scenario}__t__seed{seed}{suffix}"
    run.mkdir(parents=True)
    knobs = CONTROL_DOSE.get(method, {}) if knobs is None else knobs
    cfg = {"method": {"name": method, **knobs}, "scenario": {"name": scenario}, "task": {"name": "t"}}
    (run / "config.yaml").write_text(json.dumps({**cfg, "trainer": {"seed": seed}}))
    (run / "meta.json").write_text(json.dumps({"status": "done"}))
    keep = ("step", "entropy/mean", "val/pass@k", "val/pass@1")
    lines = [json.dumps({k: r[k] for k in keep if k in r and r[k] == r[k]}) for r in rows]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_compare_prints_controls_and_writes_controls_json_and_the_frontier(tmp_path) -> None:
    import subprocess
    import sys

    f = frame([0.5, 0.52, 0.48], [0.05, 0.02, 0.04], [0.0, 0.01, -0.01])
    for (method, scenario, seed), rows in f.groupby(["method", "scenario", "seed"]):
        write_store(tmp_path / "runs", method, scenario, seed, rows.to_dict("records"))
    dose = run_rows("entropy_bonus", "standard", 0, 2.0, (0.8, 0.7), (0.1, 0.25))
    write_store(tmp_path / "runs", "entropy_bonus", "standard", 0, dose, "__alpha=0.1", {"alpha": 0.1})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "steerbench.cli",
            "compare",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "control entropy_bonus" in proc.stdout and "DETECTED" in proc.stdout
    saved = by_name(json.loads((tmp_path / "r" / "controls.json").read_text()))
    assert set(saved) == {
        "entropy_bonus",
        "kl",
        "random_reward",
        "entropy_bonus_random_reward",
        "kl_random_reward",
    }
    assert saved["entropy_bonus"]["effect"] == pytest.approx(0.5) and saved["kl"]["verdict"] == "detected"
    frontier = pd.read_csv(tmp_path / "r" / "frontier.csv")
    assert frontier[["method", "knob", "value"]].values.tolist() == [["entropy_bonus", "alpha", 0.1]]
    assert frontier["d_pass1"].iloc[0] == pytest.approx(-0.05)  # 0.25 vs grpo's 0.3


def test_a_treatment_counts_only_at_its_controls_dose() -> None:
    """The paper grid's entropy bonus at its published α is a method under test, not the positive control."""
    from steerbench.analysis.compare.controls import control_dose

    assert control_dose("control_entropy_bonus") == {"method.alpha": 0.05}  # experiments/method/*.yaml
    assert control_dose("control_kl") == {"method.beta": 0.05}
    runs = frame([0.5, 0.52, 0.48], [0.05, 0.02, 0.04], [0.0, 0.01, -0.01])
    at_published = {r: {"method.alpha": 0.001, "method.beta": 0.05} for r in runs["run"].unique()}
    names = set(by_name(evaluate_controls(runs, at_published)))
    assert "entropy_bonus" not in names and "entropy_bonus_random_reward" not in names
    assert {"kl", "kl_random_reward", "random_reward"} <= names  # grpo cells need no dose
    at_dose = {r: {"method.alpha": 0.05, "method.beta": 0.05} for r in runs["run"].unique()}
    assert by_name(evaluate_controls(runs, at_dose)) == by_name(evaluate_controls(runs))


def test_graded_doses_are_one_control_each_against_the_plain_grpo_cell_and_holm_spans_them() -> None:
    """kl at β 0.01 and 0.05 (variants that sweep only its own knob): each dose a control of its own,
    against grpo of the plain variant; Holm over every control of the report, recomputed by hand."""
    rows = []
    drifts = {"method.beta=0.01": [0.01, 0.03, 0.02], "method.beta=0.05": [0.25, 0.28, 0.22]}
    for seed in range(3):
        rows += run_rows("grpo", "standard", seed, 0.4, (0.8, 0.5 + 0.01 * seed), (0.1, 0.3))
        rows += run_rows("grpo", "random_reward", seed, 0.4, (0.8, 0.5), (0.1, 0.1 + 0.01 * seed))
        for variant, drift in drifts.items():
            kl = run_rows("kl", "standard", seed, 0.4, (0.8, 0.5 + 0.01 * seed + drift[seed]), (0.1, 0.3))
            rows += [{**r, "run": r["run"] + variant, "variant": variant} for r in kl]
    results = evaluate_controls(pd.DataFrame(rows))
    by_dose = {(r["control"], r["variant"]): r for r in results}
    assert set(by_dose) == {("kl", "method.beta=0.01"), ("kl", "method.beta=0.05"), ("random_reward", "")}
    raw = {key: r["p_value"] for key, r in by_dose.items()}
    order = sorted(raw, key=raw.get)
    running, expected = 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(raw) - i) * raw[key]))
        expected[key] = running
    for key, r in by_dose.items():
        assert r["p_adj"] == pytest.approx(expected[key])
        assert r["verdict"] == ("detected" if r["p_adj"] < 0.05 and r["effect"] < 0 else "not detected")
        assert r["mde"] > 0
    strong = by_dose[("kl", "method.beta=0.05")]
    assert strong["reference"] == "grpo/standard" and len(strong["seeds"]) == 3
    assert strong["effect"] == pytest.approx(-np.mean([0.25, 0.28, 0.22]))
    assert strong["verdict"] == "detected"
