"""The one verl version the backend is written and tested against, and a loud check for it.

Every place that touches verl beyond its public registries (the entropy shim, the advantage shim)
calls :func:`require_verl` first, so a different verl fails with a message instead of a silent wrong run.
"""

from __future__ import annotations

import importlib
from typing import Any

VERL_VERSION = "0.9.1"  # pinned in pyproject's `verl` extra; the plug-in contract is tested against it


class VerlCompatError(RuntimeError):
    """The installed verl is not the pinned version, or an internal the shim relies on has moved."""


def installed_verl_version() -> str | None:
    try:
        import verl
    except ImportError:
        return None
    return str(getattr(verl, "__version__", "unknown"))


def require_verl(*attributes: str, allow_other_version: bool = False) -> None:
    """Check verl is importable, is the pinned version, and has each ``module:attr`` named.

    ``attributes`` are strings such as ``"verl.workers.utils.losses:ppo_loss"``.
    """
    version = installed_verl_version()
    if version is None:
        raise VerlCompatError(
            "verl is not installed; the verl backend needs `pip install 'steerbench[verl]'` "
            f"(verl=={VERL_VERSION}), plus verl[vllm] or verl[sglang] on GPU nodes"
        )
    if version != VERL_VERSION and not allow_other_version:
        raise VerlCompatError(
            f"steerbench's verl shim is pinned to verl=={VERL_VERSION}, found verl=={version}; "
            f"install verl=={VERL_VERSION} or port steerbench/verl/shim.py to the new internals"
        )
    for spec in attributes:
        module_name, _, attr = spec.partition(":")
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise VerlCompatError(
                f"verl internal module {module_name} is missing ({exc}); the shim needs porting"
            ) from exc
        obj: Any = module
        for part in attr.split(".") if attr else ():
            if not hasattr(obj, part):
                raise VerlCompatError(
                    f"verl internal {spec} is missing in verl=={version}; steerbench/verl/shim.py needs porting"
                )
            obj = getattr(obj, part)
