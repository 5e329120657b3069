"""Which runs a comparison may pair, decided from their composed configs (no analysis extra needed, so a
grid can state its family before it runs and compare can check it after).

- ``BOOKKEEPING``: keys that cannot change a run's trained numbers (the seed is the pairing key);
- ``flatten``: a nested config as ``{"a.b": value}``, lists as tuples so values compare and hash;
- ``same_config``: equal apart from ``method.name`` and bookkeeping — the same loss on the same batches,
  so a comparison of the two is degenerate (``release/clip_higher`` is grpo with the release's ε_high).
"""

from __future__ import annotations

from typing import Any

CONTROL = "grpo"  # every method is compared with the grpo run of its own config
# how a comparison is tested (analysis.compare.inference): paired by seed, or two samples of runs whose control
# cell may hold more seeds than the method (a shared control, Dunnett's allocation); a grid's design.test
TESTS = ("paired", "welch")
BOOKKEEPING = (
    "trainer.seed",
    "trainer.threads",
    "trainer.wandb",
    "trainer.checkpoint_every",
    "trainer.omega_every",  # Ω is measured on a copy of the policy (tests/test_local_trainer.py)
    "warm_start.cache_dir",
    "verl.launcher",
    "verl.ray_address",
)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists become tuples so values compare and hash."""
    if isinstance(cfg, dict):
        out: dict[str, Any] = {}
        for k, v in cfg.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tuple(cfg) if isinstance(cfg, list) else cfg}


def same_config(method_cfg: dict[str, Any], control_cfg: dict[str, Any]) -> bool:
    """Equal flattened configs, apart from ``method.name`` and keys that cannot change a run's numbers."""
    if not method_cfg or not control_cfg:
        return False
    keys = (set(method_cfg) | set(control_cfg)) - {"method.name", *BOOKKEEPING}
    return all(method_cfg.get(k) == control_cfg.get(k) for k in keys)
