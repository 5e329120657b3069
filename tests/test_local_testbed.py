"""The embedded default is a testbed for entropy: GRPO collapses it, an entropy bonus holds it up."""

import pytest

from steerbench.config import compose
from steerbench.execute import execute


@pytest.mark.slow
def test_default_grpo_collapses_entropy_while_reward_rises_and_a_bonus_resists(tmp_path):
    grpo = execute(compose(["method=grpo"]), tmp_path / "grpo")
    start, end = grpo["initial"]["entropy/mean"], grpo["final"]["entropy/mean"]
    assert end <= 0.5 * start  # ≥ 50% of the starting mean token entropy lost
    assert grpo["final"]["val/pass@1"] > grpo["initial"]["val/pass@1"] + 0.2
    bonus = execute(compose(["method=entropy_bonus", "method.alpha=0.2"]), tmp_path / "bonus")
    assert bonus["final"]["entropy/mean"] > 1.5 * end


@pytest.mark.slow
def test_long_tail_grpo_raises_pass1_while_pass64_falls_below_the_warm_start(tmp_path):
    """The RLVR-at-scale phenomenon on the long-tail suite (seed 0, 1 thread: bit-reproducible)."""
    overrides = ["task=countdown_tail", "trainer.pass_k=64", "trainer.eval_prompts=32", "trainer.threads=1"]
    run = execute(compose([*overrides, "trainer.eval_every=100"]), tmp_path / "grpo")
    start, end = run["initial"], run["final"]
    assert end["val/pass@1"] > start["val/pass@1"] + 0.01
    assert end["val/pass@k"] < start["val/pass@k"] - 0.2
    assert end["entropy/mean"] < 0.8 * start["entropy/mean"]
