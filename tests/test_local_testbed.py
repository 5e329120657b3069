"""The embedded default is a testbed for entropy: GRPO collapses it, an entropy bonus holds it up."""

import pytest

from steerbench.config import compose
from steerbench.runner import execute


@pytest.mark.slow
def test_default_grpo_collapses_entropy_while_reward_rises_and_a_bonus_resists(tmp_path):
    grpo = execute(compose(["method=grpo"]), tmp_path / "grpo")
    start, end = grpo["initial"]["entropy/mean"], grpo["final"]["entropy/mean"]
    assert end <= 0.5 * start  # ≥ 50% of the starting mean token entropy lost
    assert grpo["final"]["val/pass@1"] > grpo["initial"]["val/pass@1"] + 0.2
    bonus = execute(compose(["method=entropy_bonus", "method.alpha=0.2"]), tmp_path / "bonus")
    assert bonus["final"]["entropy/mean"] > 1.5 * end
