"""Clipping belongs to the scenario: resolve a run's effective ε_low, ε_high and c.

After :func:`steerbench.config.compose`, ``cfg.method.clip_low``, ``clip_high`` and ``clip_c`` hold the
run's effective clipping, decided per knob in this order (first match wins):

    1. an explicit override of the knob by the user (``method.clip_high=0.3``, ``+method.…``, ``++method.…``)
    2. the method's own mechanism (``MethodSpec.own_clipping``: clip_higher's ε_high, clip_cov's recipe),
       which keeps the method's typed default
    3. the scenario's value (``scenario.clip_low`` / ``clip_high`` / ``clip_c``), shared by every method

so two runs of one scenario differ only in the method's own mechanism, and grpo is every method's
matched control. Everything downstream (the local trainer, the verl launcher, compare) reads the
composed values and never re-derives them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, open_dict

from steerbench.errors import UsageError
from steerbench.methods import get_method
from steerbench.methods.surrogate import CLIP_KNOBS


def explicit_method_knobs(overrides: Sequence[str]) -> set[str]:
    """Knob names the user set directly as ``[+|++]method.<knob>=…`` overrides."""
    knobs = set()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith("method."):
            knobs.add(key[len("method.") :])
    return knobs


def effective_clipping(method: str, scenario: Mapping[str, Any], explicit: Collection[str]) -> dict[str, Any]:
    """The scenario's clipping for ``method``, leaving out knobs set ``explicit``ly or owned by the method."""
    own = set(get_method(method).own_clipping)
    clipping = {}
    for knob in CLIP_KNOBS:
        if knob in explicit or knob in own:
            continue
        if scenario.get(knob) is None:
            raise UsageError(
                f"scenario {scenario.get('name', '?')!r} declares no {knob}; every scenario sets "
                f"{', '.join(CLIP_KNOBS)} (see experiments/scenario/standard.yaml)"
            )
        clipping[knob] = scenario[knob]
    return clipping


def resolve_clipping(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Write the run's effective clipping into ``cfg.method`` (in place)."""
    scenario = cfg.get("scenario") or {}
    clipping = effective_clipping(cfg.method.name, scenario, explicit_method_knobs(overrides))
    with open_dict(cfg):
        for knob, value in clipping.items():
            cfg.method[knob] = value
