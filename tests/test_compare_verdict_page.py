"""The report's first screen: headline sentences, the design line and the forest plot come before every
table, in report.md and report.html alike; the wording follows the verdict (detected / no effect larger than
the MDE / inconclusive); degenerate comparisons stay out of the headline and the plot; a paper-shaped grid
(9 methods × 3 scenarios) gets one sentence per method and one forest panel per scenario."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
from compare_helpers import write_run

from steerbench.analysis.compare import forest, screenshot
from steerbench.analysis.compare.effects import COLUMNS, cpu_minutes
from steerbench.analysis.compare.findings import fmt
from steerbench.analysis.compare.forest import block_units, forest_figure
from steerbench.analysis.compare.report import write_report
from steerbench.analysis.compare.runs import load_runs
from steerbench.analysis.compare.verdict_page import (
    FOREST_FILE,
    forest_rows,
    headline,
    num,
    p_value,
    primary_phrase,
    signed,
)

ENDPOINT_LABEL = {
    "final_passk": "pass@64",
    "final_pass1": "pass@1",
    "final_entropy": "entropy",
    "passk_drift": "pass@64 drift",
    "pass1_rise": "pass@1 rise",
}


def effect_row(method: str, endpoint: str, effect: float, half: float, **over) -> dict:
    """One (comparison, endpoint) row of the effects contract; a primary pass@64 method row by default."""
    row = {
        "task": "countdown",
        "scenario": "standard",
        "method": method,
        "variant": "",
        "label": method,
        "kind": "method",
        "endpoint": endpoint,
        "endpoint_label": ENDPOINT_LABEL[endpoint],
        "primary": endpoint == "final_passk",
        "family": "paper",
        "family_size": 12,
        "seeds": 6,
        "prompts": 512,
        "k": 64,
        "effect": effect,
        "ci_low": effect - half,
        "ci_high": effect + half,
        "p": math.nan,
        "p_adj": math.nan,
        "mde": 0.05,
        "detected": False,
        "expected": "",
        "degenerate": "",
    }
    return {**row, **over}


def synthetic_effects() -> pd.DataFrame:
    """Ten method comparisons (one degenerate) and three positive controls, each with secondary rows."""
    primaries = [
        ("steer", 0.01, 0.03, 0.4, False),  # CI inside ±MDE: "no effect larger than"
        ("kl", 0.18, 0.09, 0.003, True),  # detected
        ("clip_higher", 0.0, 0.0, math.nan, False),  # degenerate below
        ("entropy_bonus", 0.06, 0.08, 0.2, False),  # CI past the MDE: inconclusive
        ("w_reinforce", -0.12, 0.05, 0.001, True),
        ("unlikeliness", 0.03, 0.04, 0.5, False),
        ("pos_adv_reweight", -0.02, 0.02, 0.6, False),
        ("clip_cov", 0.09, 0.06, 0.04, True),
        ("kl_cov", 0.04, 0.07, 0.3, False),
        ("steer [method.lambda_min=0.5]", 0.02, 0.02, 0.3, False),
    ]
    rows = []
    for label, eff, half, p_adj, detected in primaries:
        method, _, variant = label.partition(" [")
        common = {"label": label, "variant": variant.rstrip("]")}
        if method == "clip_higher":
            common["degenerate"] = "same config as grpo"
        rows.append(effect_row(method, "final_passk", eff, half, p_adj=p_adj, detected=detected, **common))
        rows.append(effect_row(method, "final_pass1", 0.01, 0.02, mde=0.03, **common))
        rows.append(effect_row(method, "final_entropy", 0.3, 0.09, mde=0.1, **common))
    controls = [  # the coin-flip control runs in its own scenario
        ("kl", "standard", "control: kl β=0.05", "final_pass1", 0.08, 0.03, "> 0", True),
        ("entropy_bonus", "standard", "control: α=0.003", "final_entropy", 0.04, 0.05, "> 0", False),
        ("grpo", "random_reward", "control: coin-flip rewards", "passk_drift", -0.4, 0.1, "< 0", True),
    ]
    for method, scenario, label, endpoint, eff, half, expected, detected in controls:
        rows.append(
            effect_row(
                method,
                endpoint,
                eff,
                half,
                scenario=scenario,
                kind="control",
                label=label,
                family="positive controls",
                family_size=3,
                primary=True,
                expected=expected,
                detected=detected,
                p_adj=0.01 if detected else 0.3,
                mde=0.06,
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)


PAPER_METHODS = ("clip_higher", "kl", "entropy_bonus", "w_reinforce", "unlikeliness", "pos_adv_reweight",
                 "clip_cov", "kl_cov", "steer")  # fmt: skip
SCENARIOS = ("standard", "release", "extreme")
NOT_RUN = {("clip_higher", "release"), ("clip_cov", "release"), ("clip_cov", "extreme"),
           ("kl_cov", "release"), ("kl_cov", "extreme")}  # fmt: skip


def paper_effects() -> pd.DataFrame:
    """The paper grid's 22 comparisons: w_reinforce detected in every scenario, steer in standard only, the
    others no effect larger than the MDE; each with its secondary rows."""
    rows = []
    for scenario in SCENARIOS:
        for method in PAPER_METHODS:
            if (method, scenario) in NOT_RUN:
                continue
            detected = method == "w_reinforce" or (method, scenario) == ("steer", "standard")
            eff = -0.5 if detected else 0.01
            over = {"scenario": scenario, "family_size": 22}
            rows.append(effect_row(method, "final_passk", eff, 0.04, p_adj=0.001 if detected else 0.6,
                                   detected=detected, mde=0.12, **over))  # fmt: skip
            rows.append(effect_row(method, "final_pass1", 0.01, 0.02, mde=0.03, **over))
            rows.append(effect_row(method, "final_entropy", 0.3, 0.09, mde=0.1, **over))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_a_paper_grid_gets_one_headline_per_method_naming_each_scenario():
    lines = headline(paper_effects())
    assert [line.split(":")[0] for line in lines] == [
        "clip_higher", "kl", "entropy_bonus", "w_reinforce", "unlikeliness", "pos_adv_reweight",
        "clip_cov [standard only]", "kl_cov [standard only]", "steer",
    ]  # fmt: skip
    kl = lines[1]
    assert kl == (
        "kl: no effect on pass@64 larger than the MDE in any scenario: standard +0.01 [-0.03, 0.05] "
        "(MDE ±0.12), release +0.01 [-0.03, 0.05] (MDE ±0.12), extreme +0.01 [-0.03, 0.05] (MDE ±0.12); "
        "pass@1 +0.01 [-0.01, 0.03] · +0.01 [-0.01, 0.03] · +0.01 [-0.01, 0.03]; "
        "entropy +0.30 [0.21, 0.39] · +0.30 [0.21, 0.39] · +0.30 [0.21, 0.39]"
    )
    assert lines[0].startswith(
        "clip_higher: no effect on pass@64 larger than the MDE in any scenario: standard"
    )
    assert "release" not in lines[0]  # not run there
    assert lines[3].startswith(
        "w_reinforce: pass@64 detected in every scenario: standard -0.50 [-0.54, -0.46] (Holm p 0.001)"
    )
    steer = lines[-1]
    assert steer.startswith(
        "steer: pass@64 detected in standard only: standard -0.50 [-0.54, -0.46] (Holm p 0.001), "
    )
    assert "release +0.01 [-0.03, 0.05] no effect (MDE ±0.12)" in steer
    assert lines[6].startswith("clip_cov [standard only]: no effect on pass@64 larger than ±0.12 (MDE)")


def test_the_forest_of_a_paper_grid_is_one_panel_per_scenario_with_methods_as_rows(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(forest, "save_png", lambda fig, path: figures.append(fig))
    assert forest_figure(forest_rows(paper_effects()), tmp_path / "forest.png")
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(SCENARIOS)
    assert len(fig.axes) == 3  # no other block: the paper grid has no positive controls
    # the methods' labels once, on the left panel, top to bottom; one x scale for all
    labels = sorted(panels[0].get_yticklabels(), key=lambda t: -t.get_position()[1])
    assert [t.get_text() for t in labels] == list(PAPER_METHODS)
    assert all(not any(t.get_text() for t in ax.get_yticklabels()) for ax in panels[1:])
    assert len({ax.get_xlim() for ax in panels}) == 1
    not_tested = [ax.get_title() for ax in panels for t in ax.texts if t.get_text() == "not tested"]
    assert sorted(not_tested) == sorted(scenario for _, scenario in NOT_RUN)
    # short enough to sit under the nine sentences on a 1400×1000 screen (100 dpi: 1 inch = 100 px)
    assert fig.get_size_inches()[1] < 4.2
    forest.plt.close(fig)


def test_undetected_effect_with_ci_inside_the_mde_says_no_effect_larger_than():
    r = pd.Series(effect_row("steer", "final_passk", 0.01, 0.03))
    assert primary_phrase(r) == "no effect on pass@64 larger than ±0.05 (MDE): +0.01 [-0.02, 0.04]"


def test_undetected_effect_with_ci_past_the_mde_is_inconclusive_not_null():
    r = pd.Series(effect_row("steer", "final_passk", 0.06, 0.08, p_adj=0.2))
    text = primary_phrase(r)
    assert text.startswith("pass@64 inconclusive: +0.06, CI [-0.02, 0.14] is wider than the MDE ±0.05")
    assert "no effect" not in text


def test_detected_effect_says_detected_with_its_holm_p():
    r = pd.Series(effect_row("kl", "final_passk", 0.18, 0.09, p_adj=0.003, detected=True))
    assert primary_phrase(r) == "pass@64 +0.18 [0.09, 0.27], detected (Holm p 0.003)"


def test_headline_is_one_sentence_per_method_primary_first_without_degenerate_ones():
    lines = headline(synthetic_effects())
    assert len(lines) == 9  # ten comparisons, one degenerate; no scenario prefix: the methods share one
    assert not any("clip_higher" in line for line in lines)
    assert (
        lines[0]
        == "kl: pass@64 +0.18 [0.09, 0.27], detected (Holm p 0.003); pass@1 +0.01 [-0.01, 0.03]; entropy +0.30 [0.21, 0.39]"
    )
    steer = next(line for line in lines if line.startswith("steer:"))
    assert steer.startswith("steer: no effect on pass@64 larger than ±0.05 (MDE)")


def test_forest_has_one_row_per_primary_method_then_the_controls_and_no_degenerate_row():
    rows = forest_rows(synthetic_effects())
    assert [r.control for r in rows] == [False] * 9 + [True] * 3
    assert not any("clip_higher" in r.label for r in rows)
    coin = next(r for r in rows if "coin-flip" in r.label)
    assert coin.label == "[random_reward] control: coin-flip rewards, pass@64 drift"
    assert coin.note == "expect < 0: -0.40 [-0.50, -0.30]  detected"


def test_a_control_without_mde_is_still_drawn_among_controls_of_other_endpoints(tmp_path):
    effects = synthetic_effects()
    effects.loc[effects["kind"] == "control", "mde"] = math.nan
    rows = forest_rows(effects)
    assert forest_figure(rows, tmp_path / "forest.png")
    controls = [r for r in rows if r.control]
    values, xlabel = block_units(controls)
    assert xlabel == "effect ÷ its MDE (CI half-width where none): the endpoints differ"
    coin = next(v for r, v in zip(controls, values, strict=True) if "coin-flip" in r.label)
    assert coin[:3] == pytest.approx((-4.0, -5.0, -3.0))  # -0.40 ± 0.10, in half-widths


def test_the_forest_plot_is_byte_identical_run_to_run(tmp_path):
    rows = forest_rows(synthetic_effects())
    forest_figure(rows, tmp_path / "a.png")
    forest_figure(rows, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def _runs(tmp_path):
    for seed in range(2):
        write_run(tmp_path / "runs", "grpo", "standard", seed, [1.0, 0.8, 0.5], pass1={3: 0.3})
        write_run(tmp_path / "runs", "steer", "standard", seed, [1.0, 0.9, 0.9], pass1={3: 0.32})
    return tmp_path / "runs"


def _report(tmp_path, effects):
    return write_report(load_runs([_runs(tmp_path)]), tmp_path / "rep", effects=effects)


def test_headline_and_forest_come_before_the_first_table_in_markdown_and_html(tmp_path):
    design = "Design: 6 seeds (0, 1, 2, 3, 4, 5) · 512 held-out prompts · k = 64"
    result = write_report(
        load_runs([_runs(tmp_path)]), tmp_path / "rep", effects=synthetic_effects(), design_line=design
    )
    assert FOREST_FILE in result["files"]
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    for text, table, figure in ((md, "\n| ", f"]({FOREST_FILE})"), (html, "<table>", 'alt="Primary effects')):
        first_table = text.index(table)
        assert text.index("kl: pass@64 +0.18") < first_table
        assert text.index("kl: pass@64 +0.18") < text.index("Design: 6 seeds") < text.index(figure)
        assert text.index(figure) < first_table
        assert text.index("Positive controls: 2 of 3 detected") < first_table
    # a degenerate comparison: named once, in the note, never in a headline sentence
    assert md.count("same config as grpo") == 1
    assert "clip_higher [standard]: same config as grpo" in md


def test_without_effects_the_report_is_as_before(tmp_path):
    result = _report(tmp_path, synthetic_effects().iloc[:0])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert FOREST_FILE not in result["files"] and "Verdict at a glance" not in md
    assert md.splitlines()[2].startswith("4 runs")


def test_effects_missing_a_column_name_it(tmp_path):
    with pytest.raises(ValueError, match="'mde'"):
        _report(tmp_path, synthetic_effects().drop(columns="mde"))


def test_screenshot_without_chromium_exits_2_naming_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "report.html").write_text("<html></html>")
    assert screenshot.main([str(tmp_path)]) == 2
    assert "apt-get install -y chromium" in capsys.readouterr().err


@pytest.mark.skipif(
    screenshot.find_browser() is None, reason="no headless Chromium (apt-get install -y chromium)"
)
def test_screenshot_renders_the_report_at_1400_by_1000(tmp_path):
    _report(tmp_path, synthetic_effects())
    png = screenshot.screenshot(tmp_path / "rep" / "report.html")
    assert png == tmp_path / "rep" / "report.png"
    assert png.read_bytes()[16:24] == (1400).to_bytes(4, "big") + (1000).to_bytes(4, "big")


def test_numbers_have_two_decimals_and_p_values_never_round_across_alpha():
    assert (signed(-0.004), num(0.305), signed(0.3)) == ("+0.00", "0.30", "+0.30")
    assert (p_value(0.0031), p_value(0.2), p_value(0.0004)) == ("0.003", "0.2", "< 0.001")
    assert p_value(0.0496) == "0.0496" and p_value(0.0504) == "0.05"  # 0.05 is not below 0.05


def test_the_report_states_what_the_runs_cost_and_the_resolution_it_bought(tmp_path):
    """cost: the runs' summary.json wall_s summed (one thread a run); a run without it adds nothing."""
    runs = tmp_path / "runs"
    for seed in range(3):
        for method, wall, p in (("grpo", 30.0, 0.30 + 0.01 * seed**2), ("steer", 60.0, 0.33 + 0.02 * seed)):
            run = write_run(runs, method, "standard", seed, [1.0, 0.8, 0.5], pass1={3: p})
            summary = json.loads((run / "summary.json").read_text())
            (run / "summary.json").write_text(json.dumps({**summary, "wall_s": wall}))
    (runs / "run-grpo-standard-arith-0-plain" / "summary.json").write_text("{}")
    loaded = load_runs([runs])
    assert cpu_minutes(loaded, sorted(loaded.paths)) == pytest.approx((2 * 30 + 3 * 60) / 60)
    result = write_report(loaded, tmp_path / "rep")
    v = result["verdicts"]
    mde = v.loc[v["method"] == "steer", "final_passk_mdd"].iloc[0]
    assert (
        f"Time to verdict: 4 CPU-minutes for these 6 runs (each run's wall time on one thread, summed; the warm "
        f"start in the run that built it), for a median detectable Δ pass@k of ±{fmt(mde)}."
    ) in (tmp_path / "rep" / "report.md").read_text()
