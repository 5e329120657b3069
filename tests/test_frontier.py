"""Dose–response frontier: knob parsing and deltas to the matched grpo control on synthetic runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from steerbench.analysis.compare.frontier import frontier_table, knob_of, write_frontier


def run(method: str, variant: str, seed: int, h: float, pass1: float, passk: float) -> list[dict]:
    ident = {
        "run": f"{method}__{variant}__{seed}",
        "task": "t",
        "scenario": "standard",
        "method": method,
        "variant": variant,
        "seed": seed,
        "status": "done",
    }
    return [
        {**ident, "step": 0, "entropy/mean": 1.0, "val/pass@1": 0.1, "val/pass@k": 0.8},
        {**ident, "step": 60, "entropy/mean": h, "val/pass@1": pass1, "val/pass@k": passk},
    ]


def frame() -> pd.DataFrame:
    rows = run("grpo", "", 0, 0.2, 0.40, 0.30) + run("grpo", "", 1, 0.2, 0.30, 0.40)
    rows += run("entropy_bonus", "alpha=0.01", 0, 0.5, 0.33, 0.50)
    rows += run("entropy_bonus", "alpha=0.1", 0, 1.5, 0.20, 0.70) + run(
        "entropy_bonus", "alpha=0.1", 1, 1.7, 0.30, 0.80
    )
    rows += run("kl", "method.beta=0.001", 0, 0.25, 0.40, 0.30)
    rows += run("steer", "lambda_min=0.5__group=batch", 0, 0.3, 0.3, 0.3)  # two knobs: not a dose point
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("alpha=0.05", ("alpha", 0.05)),
        ("method.beta=1e-3", ("beta", 0.001)),
        ("lambda_min=0.5__group=batch", None),
        ("", None),
        ("mapping=exp", None),
    ],
)
def test_knob_of_reads_one_numeric_knob(variant: str, expected) -> None:
    assert knob_of(variant) == expected


def test_frontier_rows_are_seed_means_with_deltas_to_grpo_at_their_seeds() -> None:
    table = frontier_table(frame())
    assert list(zip(table["method"], table["value"], strict=True)) == [
        ("entropy_bonus", 0.01), ("entropy_bonus", 0.1), ("kl", 0.001)
    ]  # fmt: skip
    strong = table.iloc[1]  # grpo means: pass@1 0.35, pass@k 0.35
    assert strong["n_seeds"] == 2 and strong["final_entropy"] == pytest.approx(1.6)
    assert strong["d_pass1"] == pytest.approx(-0.1) and strong["d_passk"] == pytest.approx(0.4)
    assert strong["kept"] == pytest.approx(4.0)
    weak = table.iloc[0]  # seed 0 only: against grpo's seed 0 (pass@1 0.40, pass@k 0.30), not grpo's mean
    assert weak["d_pass1"] == pytest.approx(-0.07) and weak["d_passk"] == pytest.approx(0.20)
    assert weak["kept"] == pytest.approx(0.20 / 0.07)
    assert math.isnan(table.iloc[2]["kept"])  # kl gave nothing up: no ratio


def test_write_frontier_writes_table_and_figure_only_for_swept_runs(tmp_path) -> None:
    assert write_frontier(frame(), tmp_path) == ["frontier.csv", "frontier.png"]
    assert len(pd.read_csv(tmp_path / "frontier.csv")) == 3
    plain = frame()
    assert write_frontier(plain[plain["variant"] == ""], tmp_path / "none") == []


def test_the_figures_grpo_star_is_the_reference_of_the_deltas() -> None:
    """grpo of the dose points' scenario and seeds: not grpo of another scenario (random_reward) mixed in."""
    from steerbench.analysis.compare.controls import run_statistics
    from steerbench.analysis.compare.frontier import _reference_runs

    other = pd.DataFrame(run("grpo", "", 0, 2.0, 0.0, 0.0)).assign(scenario="random_reward", run="rr")
    runs = run_statistics(pd.concat([frame(), other], ignore_index=True))
    ref = _reference_runs(runs, frontier_table(pd.concat([frame(), other], ignore_index=True)))
    assert set(ref["scenario"]) == {"standard"} and set(ref["seed"]) == {0, 1}
    seed0 = run_statistics(pd.concat([frame()[frame()["seed"] == 0], other], ignore_index=True))
    ref0 = _reference_runs(seed0, frontier_table(frame()[frame()["seed"] == 0]))
    assert ref0["seed"].tolist() == [0] and ref0["final_pass1"].tolist() == [0.40]


def test_the_best_dose_is_chosen_on_selection_seeds_and_tested_on_fresh_ones_only() -> None:
    """Seeds 0–2 select, 3–5 test. β = 0.01 wins on the selection seeds by luck (+0.30 on two of them); on
    the fresh seeds its real gain (≈ +0.06) is what is reported and tested, not the lucky one."""
    from scipy import stats as st

    from steerbench.analysis.compare.frontier import best_doses

    grpo_k = [0.30, 0.32, 0.31, 0.29, 0.33, 0.30]
    gain = {
        "method.beta=0.01": [0.30, 0.30, 0.04, 0.06, 0.05, 0.07],
        "method.beta=0.1": [0.20, 0.20, 0.19, 0.22, 0.21, 0.18],
    }
    rows = []
    for seed, g in enumerate(grpo_k):
        rows += run("grpo", "", seed, 0.2, 0.3, g)
        for variant, d in gain.items():
            rows += run("kl", variant, seed, 0.3, 0.3, g + d[seed])
    best = best_doses(pd.DataFrame(rows))
    (row,) = best.to_dict("records")
    assert (row["knob"], row["best_value"]) == ("beta", 0.01)
    assert (row["selection_seeds"], row["fresh_seeds"]) == ("0 1 2", "3 4 5")
    fresh = [int(s) for s in row["fresh_seeds"].split()]
    d = [gain["method.beta=0.01"][s] for s in fresh]
    assert row["d_passk_fresh"] == pytest.approx(sum(d) / len(d))
    ref = st.ttest_1samp(d, 0)
    assert row["p"] == pytest.approx(ref.pvalue) and row["p_holm"] == pytest.approx(ref.pvalue)
    assert row["d_passk_selection"] > row["d_passk_fresh"]  # the winner's curse, avoided


def test_a_dose_without_grpo_at_its_seeds_has_no_delta() -> None:
    rows = run("grpo", "", 0, 0.2, 0.4, 0.3) + run("kl", "method.beta=0.01", 1, 0.3, 0.4, 0.5)
    (row,) = frontier_table(pd.DataFrame(rows)).to_dict("records")
    assert math.isnan(row["d_passk"]) and math.isnan(row["d_pass1"])
