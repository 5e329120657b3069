"""Inputs shared by the verl tests: a tiny random Qwen2 with an offline tokenizer, and verl-format parquet."""

from __future__ import annotations

from pathlib import Path


def tiny_run_inputs(root: Path) -> dict[str, Path]:
    """``{"model", "train", "val"}``: a tiny Qwen2 dir, ``add`` problems to train on, ``countdown`` to validate.

    Train and val have different data sources, so ``scenario=random_reward`` (coin flips on the training
    sources only) is allowed.
    """
    from steerbench.verl.prepare import PrepareSpec, prepare
    from steerbench.verl.tiny import build_tiny_qwen2

    model = build_tiny_qwen2(root / "model")
    train = prepare(PrepareSpec(task="add", out=root / "add", train_size=16, val_size=4))["train"]
    val = prepare(PrepareSpec(task="countdown", out=root / "countdown", train_size=4, val_size=4))["val"]
    return {"model": model, "train": train, "val": val}
