"""Clipping belongs to the scenario: every method shares ε_low, ε_high and c with grpo, except the two
whose mechanism is a clipping rule; checked through the CLI a user runs (``run --dry-run --json``)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from steerbench.cli import app
from steerbench.config import CONFIG_DIR, compose
from steerbench.errors import UsageError
from steerbench.methods import REGISTRY

# (ε_low, ε_high, c) as the issue and DESIGN.md define each scenario
SCENARIO_CLIPPING = {
    "standard": (0.2, 0.2, 3.0),
    "release": (0.2, 0.28, 10.0),
    "extreme": (0.99, 5.0, 10.0),
}
OWN_CLIPPING_METHODS = {"clip_higher", "clip_cov"}


def dry_run_clipping(method: str, scenario: str, *extra: str) -> tuple[float, float, float]:
    result = CliRunner().invoke(
        app, ["run", "--method", method, "--scenario", scenario, "--dry-run", "--json", *extra]
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)["config"]["method"]
    return (m["clip_low"], m["clip_high"], m["clip_c"])


@pytest.mark.parametrize("scenario", sorted(SCENARIO_CLIPPING))
def test_every_method_but_the_clipping_rules_shares_grpos_clipping(scenario):
    clipping = {method: dry_run_clipping(method, scenario) for method in sorted(REGISTRY)}
    assert clipping["grpo"] == SCENARIO_CLIPPING[scenario]
    for method in set(REGISTRY) - OWN_CLIPPING_METHODS:
        assert clipping[method] == clipping["grpo"], method
    low, _, c = SCENARIO_CLIPPING[scenario]
    assert clipping["clip_higher"] == (low, 0.28, c)  # DAPO's ε_high is the method
    assert clipping["clip_cov"] == (1.0, 1.0, 10.0)  # the published recipe is the method


def test_an_explicit_user_override_still_wins():
    assert dry_run_clipping("steer", "release", "method.clip_high=0.3") == (0.2, 0.3, 10.0)
    assert dry_run_clipping("clip_cov", "standard", "method.clip_c=5") == (1.0, 1.0, 5.0)
    assert dry_run_clipping("clip_higher", "extreme", "++method.clip_high=6") == (0.99, 6.0, 10.0)


def test_a_scenario_without_clipping_is_a_usage_error():
    with pytest.raises(UsageError, match="declares no clip_c"):
        compose(["scenario=standard", "~scenario.clip_c"])


def test_the_paper_grid_runs_standard_release_and_extreme():
    grid = yaml.safe_load((CONFIG_DIR / "grid" / "paper.yaml").read_text())
    assert grid["scenarios"] == ["standard", "release", "extreme"]


def test_the_methods_table_says_which_clipping_a_method_owns():
    result = CliRunner().invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["clip_higher"]["own_clipping"] == {"clip_high": 0.28}
    assert rows["clip_cov"]["own_clipping"] == {"clip_low": 1.0, "clip_high": 1.0, "clip_c": 10.0}
    for name in set(rows) - OWN_CLIPPING_METHODS:
        assert rows[name]["own_clipping"] == {} and not {"clip_low", "clip_high", "clip_c"} & set(
            rows[name]["knobs"]
        )
