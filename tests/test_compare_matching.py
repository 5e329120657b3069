"""Matched controls: each method against the grpo run with identical config except its own knobs,
paired by seed, with the paired difference and its Holm-corrected p checked against scipy."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from compare_helpers import config, write_run
from scipy import stats as st

from steerbench.analysis.compare.inference import welch_level, welch_worst_size
from steerbench.analysis.compare.matching import differing_keys
from steerbench.analysis.compare.report import write_report
from steerbench.analysis.compare.runs import flatten, load_runs

SEEDS = (0, 1, 2)
# final entropy per (method, scenario, seed): steer well above grpo, clip_higher slightly and noisily
FINAL_H = {
    ("grpo", "standard"): (0.20, 0.23, 0.18),
    ("steer", "standard"): (0.52, 0.57, 0.49),
    ("clip_higher", "standard"): (0.26, 0.21, 0.25),
    ("grpo", "release"): (0.30, 0.28, 0.33),
    ("steer", "release"): (0.61, 0.60, 0.66),
    ("clip_higher", "release"): (0.29, 0.35, 0.31),
}
PASSK = {
    ("grpo", "standard"): (0.50, 0.55, 0.45),
    ("steer", "standard"): (0.60, 0.58, 0.55),
    ("clip_higher", "standard"): (0.52, 0.50, 0.50),
    ("grpo", "release"): (0.50, 0.45, 0.50),
    ("steer", "release"): (0.55, 0.50, 0.60),
    ("clip_higher", "release"): (0.45, 0.50, 0.55),
}


def paper_like_grid(root: Path) -> None:
    """steer, clip_higher and grpo in standard and release, plus two runs that have no matched control."""
    for (method, scenario), finals in FINAL_H.items():
        for seed in SEEDS:
            h = [1.0, 0.6, finals[seed]]
            pk = PASSK[(method, scenario)][seed]
            write_run(root, method, scenario, seed, h, pass1={3: pk - 0.2}, passk={3: pk})
    # steer with the old per-method dual clip (c = 10) in the standard scenario: not grpo's c = 3
    for seed in SEEDS:
        cfg = config("steer", "standard", "arith", seed, 3, method={"clip_c": 10.0})
        write_run(root, "steer", "standard", seed, [1.0, 0.7, 0.5], variant="method.clip_c=10", cfg=cfg)
    # kl at another learning rate than any grpo run
    for seed in SEEDS:
        cfg = config("kl", "standard", "arith", seed, 3, trainer={"lr": 1e-3})
        write_run(root, "kl", "standard", seed, [1.0, 0.7, 0.4], variant="trainer.lr=1e-3", cfg=cfg)


def holm_by_hand(p: dict) -> dict:
    order = sorted(p, key=p.get)
    out, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[k]))
        out[k] = running
    return out


def test_each_method_gets_its_matched_control_and_a_holm_corrected_paired_test(tmp_path):
    paper_like_grid(tmp_path / "runs")
    result = write_report(load_runs([tmp_path / "runs"]), tmp_path / "rep")
    v = result["verdicts"].set_index(["scenario", "method", "variant"])
    matched = [(s, m) for s in ("standard", "release") for m in ("clip_higher", "steer")]
    for scen, method in matched:
        row = v.loc[(scen, method, "")]
        assert row["matched"] and row["control_variant"] == "" and row["control_scenario"] == scen
        assert row["pairs"] == 3 and row["differs"] == ""
    # release's clip_higher is grpo's config (ε_high 0.28 either way): degenerate, outside the family
    assert v.loc[("release", "clip_higher", ""), "degenerate"] == "the same config as its control (grpo)"
    family = [key for key in matched if key != ("release", "clip_higher")]
    for stat, table in (("final_entropy", FINAL_H), ("final_passk", PASSK)):
        p_raw, refs = {}, {}
        for scen, method in matched:
            ref = st.ttest_rel(table[(method, scen)], table[("grpo", scen)])
            p_raw[(scen, method)], refs[(scen, method)] = ref.pvalue, ref
        holm = holm_by_hand({key: p_raw[key] for key in family})
        for key, ref in refs.items():
            row = v.loc[(*key, "")]
            d = np.subtract(table[(key[1], key[0])], table[("grpo", key[0])])
            ci = ref.confidence_interval(0.95)
            assert row[f"{stat}_diff"] == pytest.approx(d.mean())
            assert (row[f"{stat}_diff_low"], row[f"{stat}_diff_high"]) == pytest.approx((ci.low, ci.high))
            assert row[f"{stat}_p"] == pytest.approx(ref.pvalue)
            assert row[f"{stat}_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
            # only the primary endpoint (pass@k by default) of a non-degenerate comparison is corrected
            if stat == "final_passk" and key in family:
                assert row[f"{stat}_p_holm"] == pytest.approx(holm[key])
            else:
                assert math.isnan(row[f"{stat}_p_holm"])
    assert (v["family_size"] == 3).all() and (v["primary"] == "final_passk").all()
    # steer's entropy differs clearly in both scenarios (uncorrected: a secondary endpoint)
    assert v.loc[("standard", "steer", ""), "final_entropy_p"] < 0.01
    assert v.loc[("release", "steer", ""), "final_entropy_p"] < 0.01
    # the unmatched runs name what differs and get no test
    unfair = v.loc[("standard", "steer", "method.clip_c=10")]
    assert (
        not unfair["matched"]
        and unfair["differs"] == "method.clip_c"
        and math.isnan(unfair["final_entropy_p"])
    )
    other_lr = v.loc[("standard", "kl", "trainer.lr=1e-3")]
    assert not other_lr["matched"] and other_lr["differs"] == "trainer.lr"

    md = (tmp_path / "rep" / "report.md").read_text()
    steer_std = v.loc[("standard", "steer", "")]
    d = np.subtract(FINAL_H[("steer", "standard")], FINAL_H[("grpo", "standard")])
    ci = st.ttest_rel(FINAL_H[("steer", "standard")], FINAL_H[("grpo", "standard")]).confidence_interval()
    row = f"| standard | steer | grpo | 3 | +{d.mean():.3g} [{ci.low:.3g}, {ci.high:.3g}] | "
    assert row in md and math.isnan(steer_std["final_entropy_p_holm"])  # secondary: no corrected p
    assert (
        "| standard | steer [method.clip_c=10] | none: nearest grpo (standard) differs in method.clip_c |"
        in md
    )
    text = "\n".join(result["findings"])
    assert f"[standard] steer − grpo over 3 paired seeds: final entropy +{d.mean():.3g}" in text
    assert "[standard] clip_higher − grpo over 3 paired seeds: final entropy" in text
    assert (
        "[standard] kl [trainer.lr=1e-3]: no matched grpo control; the nearest (grpo in standard) differs "
        "in trainer.lr, so no test is run." in text
    )
    for sentence in result["findings"]:
        if "clearly higher" in sentence or "clearly lower" in sentence:
            assert "Holm p = " in sentence


def test_the_method_knobs_and_bookkeeping_are_not_differences_but_shared_knobs_are():
    grpo = flatten(config("grpo", "standard", "arith", 0, 3))
    steer = flatten(config("steer", "standard", "arith", 0, 3))
    assert differing_keys(steer, grpo, "steer") == []
    # ε_high is clip_higher's mechanism (C1); for steer clipping is the scenario's and must match
    assert (
        differing_keys(flatten(config("clip_higher", "standard", "arith", 0, 3)), grpo, "clip_higher") == []
    )
    # ...but only the knobs that are its mechanism: clip_higher owns ε_high, not ε_low; clip_cov owns all three
    low = flatten(config("clip_higher", "standard", "arith", 0, 3, method={"clip_low": 0.3}))
    assert differing_keys(low, grpo, "clip_higher") == ["method.clip_low"]
    recipe = {"clip_low": 1.0, "clip_high": 1.0, "clip_c": 10.0, "clip_cov_ratio": 2e-4}
    assert (
        differing_keys(
            flatten(config("clip_cov", "standard", "arith", 0, 3, method=recipe)), grpo, "clip_cov"
        )
        == []
    )
    unknown = flatten(config("not_registered", "standard", "arith", 0, 3, method={"clip_c": 10.0}))
    assert differing_keys(unknown, grpo, "not_registered") == ["method.clip_c"]
    unfair = flatten(config("steer", "standard", "arith", 0, 3, method={"clip_high": 0.28, "clip_c": 10.0}))
    assert differing_keys(unfair, grpo, "steer") == ["method.clip_c", "method.clip_high"]
    shared = flatten(
        config("steer", "standard", "arith", 0, 3, method={"loss_agg_mode": "seq-mean-token-sum"})
    )
    assert differing_keys(shared, grpo, "steer") == ["method.loss_agg_mode"]
    other = flatten(config("grpo", "standard", "arith", 1, 3, trainer={"threads": 2, "lr": 1e-3}))
    assert differing_keys(steer, other, "steer") == ["trainer.lr"]  # seed pairs, threads cannot matter
    release = flatten(config("steer", "release", "arith", 0, 3))
    assert differing_keys(release, grpo, "steer") == ["method.clip_c", "method.clip_high", "scenario.name"]
    assert differing_keys({}, grpo, "steer") == ["(config.yaml missing)"]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.blocks: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        self._tag = tag

    def handle_data(self, data):
        if self._tag in ("td", "th"):
            self.cells.append(data)
        elif self._tag in ("p", "li", "h1", "h2", "h3", "figcaption"):
            self.blocks.append(data)
        self._tag = ""


def test_markdown_and_html_carry_the_same_content(tmp_path):
    paper_like_grid(tmp_path / "runs")
    write_report(load_runs([tmp_path / "runs"]), tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text().splitlines()
    parser = _Text()
    parser.feed((tmp_path / "rep" / "report.html").read_text())
    md_cells = [
        c.strip().replace("\\|", "|")
        for line in md
        if line.startswith("| ") and not line.startswith("| ---")
        for c in line[2:-2].split(" | ")
    ]
    assert md_cells == parser.cells
    md_blocks = [line.lstrip("#- ").strip("*") for line in md if line and not line.startswith(("|", "!["))]
    assert md_blocks == parser.blocks
    assert len(md_cells) > 100 and any("Verdict" in b for b in md_blocks)


def test_a_welch_family_tests_each_method_against_all_of_its_shared_controls_runs(tmp_path):
    """A grid that declares ``design.test: welch`` and gives grpo more seeds: each method's runs against every
    grpo run of its scenario, scipy's Welch t and interval size-corrected, the design line saying so."""
    import json

    root = tmp_path / "runs"
    paper_like_grid(root)
    extra = {3: (0.21, 0.47), 4: (0.19, 0.52)}  # grpo seeds 3 and 4 in standard: (final entropy, pass@k)
    for seed, (h, pk) in extra.items():
        write_run(root, "grpo", "standard", seed, [1.0, 0.6, h], pass1={3: pk - 0.2}, passk={3: pk})
    family = {"name": "shared: final_passk", "primary": "final_passk", "size": 3, "test": "welch"}
    (root / "grid.json").write_text(json.dumps({"design": {"family": family}}))
    result = write_report(load_runs([root]), tmp_path / "rep")
    v = result["verdicts"].set_index(["scenario", "method", "variant"])
    grpo = {
        "final_entropy": [*FINAL_H[("grpo", "standard")], *(h for h, _ in extra.values())],
        "final_passk": [*PASSK[("grpo", "standard")], *(pk for _, pk in extra.values())],
    }
    row = v.loc[("standard", "steer", "")]
    assert (v["test"] == "welch").all()
    for stat, table in (("final_entropy", FINAL_H), ("final_passk", PASSK)):
        ref = st.ttest_ind(table[("steer", "standard")], grpo[stat], equal_var=False)
        ci = ref.confidence_interval(1 - welch_level(0.05, 3, 5))  # size-corrected, as the p
        assert row[f"{stat}_n"] == 3 and row[f"{stat}_n_control"] == 5
        assert row[f"{stat}_p"] == pytest.approx(welch_worst_size(ref.pvalue, 3, 5))
        assert (row[f"{stat}_diff_low"], row[f"{stat}_diff_high"]) == pytest.approx((ci.low, ci.high))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Welch's t over runs" in md and "3 seeds per method, 3–5 per grpo control" in md
    text = "\n".join(result["findings"])
    assert "[standard] steer − grpo over 3 runs against 5:" in text


def test_a_grid_that_tests_nothing_joins_no_family(tmp_path):
    """grpo alone (dose_grpo) declares a family of size 0: the report's family is the others', here none."""
    import json

    root = tmp_path / "runs"
    paper_like_grid(root)
    empty = {"name": "dose_grpo: final_passk", "primary": "final_passk", "size": 0, "members": []}
    (root / "grid.json").write_text(json.dumps({"design": {"family": empty}}))
    v = write_report(load_runs([root]), tmp_path / "rep")["verdicts"]
    assert (v["family"] == "the comparisons present").all() and (v["family_size"] == 3).all()
