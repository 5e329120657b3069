"""Inputs of the verl smoke runs, built offline: a tiny random Qwen2 and two embedded tasks as parquet.

The model (``steerbench.local.tiny_hf``) has a byte-level tokenizer with no merges and head dim 64 (what
vLLM's and flash-attention's kernels support), in bfloat16. A random model scores nothing on a real
reward, so smoke runs use ``scenario=random_reward``.
"""

from __future__ import annotations

from pathlib import Path


def tiny_run_inputs(root: Path) -> dict[str, Path]:
    """``{"model", "train", "val"}``: a tiny Qwen2 dir, ``add`` problems to train on, ``countdown`` to validate.

    Train and val have different data sources, so ``scenario=random_reward`` (coin flips on the training
    sources only) is allowed.
    """
    import torch

    from steerbench.local.tiny_hf import save_tiny_qwen2
    from steerbench.verl.prepare import PrepareSpec, prepare

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
