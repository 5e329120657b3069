"""Configs shared by the verl tests, built the way ``steerbench run --backend verl`` builds them."""

from __future__ import annotations

from pathlib import Path


def verl_cfg(
    root: Path, method: str = "grpo", *overrides: str, knobs: dict | None = None, scenario: str = "standard"
):
    """``compose()`` of a verl run, as ``steerbench run --backend verl`` builds it, with stand-in inputs.

    The model dir and the parquet files exist (train: ``math_dapo``, val: ``aime``) but hold nothing a
    trainer could use; enough for composing and validating the command.
    """
    import pandas as pd

    from steerbench.config import compose
    from steerbench.verl.launch import hydra_value

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
    from steerbench.verl.launch import build_verl_launch, validate_overrides

    launch = build_verl_launch(
        verl_cfg(root, method, *overrides, knobs=knobs, **kw), Path(root) / "run", validate=False
    )
    return validate_overrides(launch.overrides, method=method)


def worker_actor_config(root: Path, method: str, knobs: dict | None = None):
    """The worker-side ActorConfig dataclass verl builds from that config."""
    from verl.utils.config import omega_conf_to_dataclass

    return omega_conf_to_dataclass(verl_config(root, method, knobs=knobs).actor_rollout_ref.actor)
