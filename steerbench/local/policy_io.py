"""Policies from where training leaves them: an embedded run's checkpoint, or a verl run's HF exports.

* :func:`load_run_policy`  a ``steerbench run`` (embedded backend) directory: ``config.yaml`` and the
  trainer's ``checkpoints/latest.pt`` (``{"model": state_dict, ...}``), rebuilt as ``trainer.build_policy``
  builds it (same ``ModelConfig`` from the run's config, or the run's Hugging Face model).
* :func:`verl_checkpoints`  a ``steerbench run --backend verl`` directory: verl writes
  ``checkpoints/global_step_<N>/actor/huggingface/`` (config and tokenizer always; the weights only with
  ``actor_rollout_ref.actor.checkpoint.save_contents`` including ``hf_model``, or after verl's
  ``python -m verl.model_merger merge --backend fsdp --local_dir .../actor --target_dir .../actor/huggingface``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from steerbench.errors import UsageError
from steerbench.local.trainer import build_policy, build_task

LATEST = Path("checkpoints") / "latest.pt"
VERL_EXPORT = re.compile(r"global_step_(\d+)$")
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


def read_run_config(run_dir: Path) -> Any:
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"--run {str(run_dir)!r} has no config.yaml; it is not a steerbench run directory")
    try:
        return OmegaConf.load(cfg_path)
    except Exception as err:  # noqa: BLE001  any YAML/OmegaConf error is a bad run directory
        raise UsageError(f"cannot read {str(cfg_path)!r}: {err}") from None


def load_run_policy(run_dir: Path) -> tuple[Any, Any, Any]:
    """(policy in eval mode, task, cfg) of an embedded run's ``checkpoints/latest.pt``."""
    weights = run_dir / LATEST
    if not weights.is_file():
        raise UsageError(
            f"--run {str(run_dir)!r} has no checkpoint ({weights} is missing); pass a run directory written "
            "by `steerbench run` after its first checkpoint"
        )
    cfg = read_run_config(run_dir)
    task = build_task(cfg)
    # the run's architecture with fresh weights: no warm start (the checkpoint overwrites every weight)
    shell: Any = OmegaConf.merge(cfg, {"warm_start": {"steps": 0}}) if "warm_start" in cfg else cfg
    model = build_policy(shell, task)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001  unpickling or shape errors: the checkpoint does not fit
        raise UsageError(f"cannot load {str(weights)!r} into the run's model: {err}") from None
    return model.eval(), task, cfg


def verl_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, HF export directory) of every verl checkpoint with loadable weights, by step."""
    found, weightless = [], []
    for step_dir in sorted((run_dir / "checkpoints").glob("global_step_*")):
        m = VERL_EXPORT.search(step_dir.name)
        export = step_dir / "actor" / "huggingface"
        if not m or not (export / "config.json").is_file():
            continue
        if any(any(export.glob(p)) for p in WEIGHT_FILES):
            found.append((int(m.group(1)), export))
        else:
            weightless.append(export)
    if not found:
        hint = (
            f" ({len(weightless)} export(s) hold only config and tokenizer, e.g. {weightless[0]}: launch with "
            "hf_model added to actor_rollout_ref.actor.checkpoint.save_contents, or merge one with "
            "`python -m verl.model_merger merge --backend fsdp --local_dir <global_step_N>/actor "
            "--target_dir <global_step_N>/actor/huggingface`)"
            if weightless
            else ""
        )
        raise UsageError(
            f"--run {str(run_dir)!r} has no verl checkpoint with Hugging Face weights under "
            f"checkpoints/global_step_<N>/actor/huggingface/{hint}"
        )
    return sorted(found)
