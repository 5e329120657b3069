"""The trainer's π_old is the sampler's: one RL step runs no teacher-forced π_old pass."""

import torch
from local_helpers import TINY

from steerbench.config import compose
from steerbench.local import trainer
from steerbench.local.trainer import build_policy, build_task, init_state, rl_step


def test_old_log_prob_and_entropy_come_from_the_rollout(tmp_path, monkeypatch):
    cfg = compose(
        [*TINY, "trainer.minibatches=2", "trainer.ppo_epochs=2", f"warm_start.cache_dir={tmp_path}"]
    )
    task = build_task(cfg)
    state = init_state(cfg, build_policy(cfg, task))
    seen = {}
    real_sample, real_advantages = trainer.sample, trainer.compute_advantages
    teacher_forced = []
    real_scoring = trainer.response_logprobs

    def sample(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["rollout"] = real_sample(*args, **kwargs)
        return seen["rollout"]

    def compute_advantages(name, rewards, group_index, mask, old_log_prob, **knobs):  # type: ignore[no-untyped-def]
        seen["old_log_prob"] = old_log_prob
        return real_advantages(name, rewards, group_index, mask, old_log_prob, **knobs)

    def scoring(model, tokens, *args):  # type: ignore[no-untyped-def]
        teacher_forced.append(torch.is_grad_enabled())
        return real_scoring(model, tokens, *args)

    monkeypatch.setattr(trainer, "sample", sample)
    monkeypatch.setattr(trainer, "compute_advantages", compute_advantages)
    monkeypatch.setattr(trainer, "response_logprobs", scoring)
    row = rl_step(cfg, task, state)
    rollout = seen["rollout"]
    assert seen["old_log_prob"] is rollout.old_log_prob
    mask = rollout.response_mask
    assert row["entropy/mean"] == float((rollout.entropy * mask).sum() / mask.sum())
    # the only teacher-forced passes are the 2 epochs × 2 minibatches of training, all with gradient
    assert teacher_forced == [True] * 4
