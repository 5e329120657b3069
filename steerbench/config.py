"""Hydra composition of a run's config from ``experiments/`` plus dotted overrides.

The ``method`` group is generated from the method registry: ``method=<name>`` selects a node holding
``name`` and every knob of the method's typed config with its default, so ``method.lambda_min=0.5`` is
checked against the real knob names and the defaults have one source of truth (the dataclass).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import steerbench.experiments as experiments
from steerbench.clipping import resolve_clipping
from steerbench.errors import UsageError
from steerbench.methods import REGISTRY, MethodError, get_method

CONFIG_DIR = Path(experiments.__file__).resolve().parent
METHOD_KEYS = ("name",)


def _store_method_group() -> None:
    store = ConfigStore.instance()
    for name, spec in REGISTRY.items():
        store.store(group="method", name=name, node={"name": name, **spec.knobs()})


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved run config; bad keys, groups or values raise UsageError naming the culprit."""
    _store_method_group()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        message = " ".join((str(exc).strip() or str(cause).strip() or type(cause).__name__).split())
        message = message.split(" Config search path")[0]  # Hydra's internals, noise to a user
        raise UsageError(f"bad config: {message}") from None
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.resolve(cfg)
    resolve_clipping(cfg, overrides)
    validate(cfg)
    return cfg


def to_dict(node: Any) -> dict[str, Any]:
    """A config node as a plain, resolved dict."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def method_knobs(cfg: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in to_dict(cfg.method).items() if k not in METHOD_KEYS}


def validate(cfg: DictConfig) -> None:
    """Checks Hydra cannot do: method knob values, trainer ranges."""
    try:
        get_method(cfg.method.name).make_config(**method_knobs(cfg))
    except MethodError as exc:
        raise UsageError(str(exc)) from None
    t = cfg.trainer
    positive = (
        "steps",
        "prompts_per_step",
        "samples_per_prompt",
        "ppo_epochs",
        "minibatches",
        "eval_prompts",
    )
    for key in positive:
        if int(t[key]) < 1:
            raise UsageError(f"trainer.{key}={t[key]} is out of range; it must be ≥ 1")
    if not t.lr > 0 or not t.temperature > 0:
        raise UsageError(f"trainer.lr={t.lr} and trainer.temperature={t.temperature} must be > 0")
    rollouts = int(t.prompts_per_step) * int(t.samples_per_prompt)
    if rollouts % int(t.minibatches):
        raise UsageError(
            f"trainer.minibatches={t.minibatches} must divide prompts_per_step × samples_per_prompt = {rollouts}"
        )
    if cfg.backend not in ("local", "verl"):
        raise UsageError(f"backend={cfg.backend!r} is unknown; choose local or verl")


def config_hash(node: Any) -> str:
    """A stable short hash of a config node (dicts, dataclasses or DictConfigs)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        node = dataclasses.asdict(node)
    return hashlib.sha256(json.dumps(node, sort_keys=True, default=str).encode()).hexdigest()[:16]
