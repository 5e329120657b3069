"""Inputs of the verl smoke runs and checks, built offline: a tiny random Qwen2 and two embedded tasks as
parquet; a composed verl run with stand-in inputs and the actor config verl builds from it; a jagged
micro-batch as verl's engine hands it to the loss (the verl tests and ``benchmarks/gpu_check.py``).

The model (``steerbench.local.tiny_hf``) has a byte-level tokenizer with no merges and head dim 64 (what
vLLM's and flash-attention's kernels support), in bfloat16. A random model scores nothing on a real
reward, so smoke runs use ``scenario=random_reward``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from steerbench.config import compose
from steerbench.local.tiny_hf import save_tiny_qwen2
from steerbench.methods import PolicyBatch, compute_policy_loss
from steerbench.verl.launch import build_verl_launch, hydra_value, validate_overrides
from steerbench.verl.prepare import PrepareSpec, prepare


def tiny_run_inputs(root: Path) -> dict[str, Path]:
    """``{"model", "train", "val"}``: a tiny Qwen2 dir, ``add`` problems to train on, ``countdown`` to validate.

    Train and val have different data sources, so ``scenario=random_reward`` (coin flips on the training
    sources only) is allowed.
    """
    root = Path(root)
    model = save_tiny_qwen2(
        root / "model",
        hidden=128,
        heads=2,
        kv_heads=1,
        dtype=torch.bfloat16,
        pad_vocab_to=64,
        max_positions=2048,
    )
    train = prepare(PrepareSpec(task="add", out=root / "add", train_size=16, val_size=4))["train"]
    val = prepare(PrepareSpec(task="countdown", out=root / "countdown", train_size=4, val_size=4))["val"]
    return {"model": model, "train": train, "val": val}


def verl_cfg(
    root: Path, method: str = "grpo", *overrides: str, knobs: dict | None = None, scenario: str = "standard"
):
    """``compose()`` of a verl run, as ``steerbench run --backend verl`` builds it, with stand-in inputs.

    The model dir and the parquet files exist (train: ``math_dapo``, val: ``aime``) but hold nothing a
    trainer could use; enough for composing and validating the command.
    """
    import pandas as pd  # the analysis extra, which the verl extra installs

    root = Path(root)
    (root / "model").mkdir(parents=True, exist_ok=True)
    for name, source in (("train", "math_dapo"), ("val", "aime_2024_dapo_boxed")):
        path = root / f"{name}.parquet"
        if not path.exists():
            pd.DataFrame({"data_source": [source]}).to_parquet(path)
    return compose(
        [
            "backend=verl",
            f"method={method}",
            f"scenario={scenario}",
            f"model.hf_path={root / 'model'}",
            f"verl.train_files={root / 'train.parquet'}",
            f"verl.val_files={root / 'val.parquet'}",
            *(f"method.{k}={hydra_value(v)}" for k, v in (knobs or {}).items()),
            *overrides,
        ]
    )


def verl_config(root: Path, method: str = "grpo", *overrides: str, knobs: dict | None = None, **kw):
    """verl's own composed config (DictConfig) for that run, validated like the launcher does."""
    launch = build_verl_launch(
        verl_cfg(root, method, *overrides, knobs=knobs, **kw), Path(root) / "run", validate=False
    )
    return validate_overrides(launch.overrides, method=method)


def worker_actor_config(root: Path, method: str, knobs: dict | None = None):
    """The worker-side ActorConfig dataclass verl builds from that config."""
    from verl.utils.config import omega_conf_to_dataclass

    return omega_conf_to_dataclass(verl_config(root, method, knobs=knobs).actor_rollout_ref.actor)


def engine_micro_batch(b: int = 4, p: int = 3, t: int = 6, seed: int = 0, device: str = "cpu"):
    """A micro-batch as verl's engine hands it to ``ppo_loss``: padded prompts and responses (row i has
    ``t − i`` response tokens), and the model's outputs flat over the valid tokens (jagged)."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    g = torch.Generator().manual_seed(seed)
    response_mask = torch.ones(b, t, dtype=torch.long)
    for i in range(b):
        response_mask[i, t - i :] = 0
    attention_mask = torch.cat([torch.ones(b, p, dtype=torch.long), response_mask], dim=1)
    total = int(attention_mask.sum())
    data = TensorDict(
        {
            "prompts": torch.ones(b, p, dtype=torch.long),
            "responses": torch.ones(b, t, dtype=torch.long),
            "attention_mask": attention_mask,
            "response_mask": response_mask,
            "old_log_probs": -torch.rand(b, t, generator=g) - 0.1,
            "advantages": torch.randn(b, 1, generator=g).expand(b, t).contiguous(),
            "ref_log_prob": -torch.rand(b, t, generator=g) - 0.1,
            "entropy": torch.rand(b, t, generator=g) * 2,  # π_old's, as _compute_old_log_prob stores it
        },
        batch_size=[b],
    )
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=b)
    flat_log_probs = (-torch.rand(total, generator=g) - 0.1).to(device).requires_grad_(True)
    flat_entropy = (
        (torch.rand(total, generator=g) * 2).to(device).requires_grad_(True)
    )  # entropy_bonus trains it
    return data.to(device), {"log_probs": flat_log_probs, "entropy": flat_entropy}


def padded_reference_loss(method: str, config: Any, data: Any, model_output: dict) -> Any:
    """``compute_policy_loss`` on the padded tensors of an engine micro-batch, with the actor config's clipping:
    what verl's ``ppo_loss`` through steerbench's shim must equal."""
    from verl.workers.utils.padding import no_padding_2_padding

    batch = PolicyBatch(
        log_prob=no_padding_2_padding(model_output["log_probs"], data),
        old_log_prob=data["old_log_probs"],
        advantages=data["advantages"],
        response_mask=data["response_mask"].bool(),
        entropy=no_padding_2_padding(model_output["entropy"], data),
        ref_log_prob=data["ref_log_prob"],
        old_entropy=data["entropy"],
    )
    loss, _ = compute_policy_loss(
        method,
        batch,
        clip_low=config.clip_ratio_low,
        clip_high=config.clip_ratio_high,
        clip_c=config.clip_ratio_c,
    )
    return loss
