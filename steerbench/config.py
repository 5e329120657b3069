"""Hydra composition of a run's config from ``experiments/`` plus dotted overrides, typed and validated.

The ``method`` group is generated from the method registry: ``method=<name>`` selects a structured node
holding ``name`` and every knob of the method's typed config with its default, so ``method.lambda_min=0.5``
is checked against the real knob names and types, and the defaults have one source of truth (the
dataclass). The root config's schema (``steerbench.schema.RunSchema``) types the trainer, warm-start and
model knobs the same way. ``compose`` then runs one validation pass (ranges, finiteness, task knobs,
cross-field rules) before returning: every violation is a UsageError naming the key, the value and
the allowed range, raised before a caller writes anything. ``compose_omega`` composes ``validate-omega``'s
config (root ``schema.ValidateOmegaSchema``, its ``omega`` group) the same way.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

import steerbench.experiments as experiments
from steerbench import schema
from steerbench.clipping import resolve_clipping
from steerbench.errors import UsageError
from steerbench.local.model import ModelConfig
from steerbench.methods import REGISTRY, MethodError, get_method
from steerbench.tasks.registry import ALL_TASKS, get_task

CONFIG_DIR = Path(experiments.__file__).resolve().parent
METHOD_KEYS = ("name",)
RUN_ROOT, OMEGA_ROOT = (
    "config",
    "validate_omega_schema",
)  # experiments/config.yaml; schema.ValidateOmegaSchema
# the groups typed by schema dataclasses, for the range in a type error's message
RANGED = {**schema.TYPED, "omega": schema.OmegaValidationConfig}


def _store_groups() -> None:
    store = ConfigStore.instance()
    store.store(name="run_schema", node=schema.RunSchema)
    store.store(name=OMEGA_ROOT, node=schema.ValidateOmegaSchema)
    for name, spec in REGISTRY.items():
        node = dataclasses.make_dataclass(
            f"{spec.config.__name__}Node",
            [("name", str, dataclasses.field(default=name))],
            bases=(spec.config,),
        )
        store.store(group="method", name=name, node=node)


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved, validated run config; bad keys, groups or values raise UsageError naming the culprit."""
    for override in overrides:
        _check_group_choice(override)
    cfg = _hydra_compose(list(overrides))
    OmegaConf.resolve(cfg)
    resolve_clipping(cfg, overrides)
    validate(cfg)
    return cfg


def compose_omega(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """``validate-omega``'s ``omega`` node: typed, every range and choice checked (UsageError otherwise)."""
    cfg = _hydra_compose(list(overrides), OMEGA_ROOT)
    schema.check_ranges("omega", cfg.omega, schema.OmegaValidationConfig)
    return cfg.omega


GROUPS = ("method", "scenario", "task", "model")


def _check_group_choice(override: str) -> None:
    """``method=steer`` picks a config by name: refuse anything else before Hydra (which would raise
    TypeErrors for ``scenario=[1,2]`` or read ``method=nan`` as a float)."""
    key, _, value = override.partition("=")
    key = key.lstrip("+~")
    group = key.split(".", 1)[0]
    if group in GROUPS and key == f"{group}.name":
        raise UsageError(f"{override!r}: choose the {group} with {group}=<name>, not {group}.name")
    literal = value.lower() in ("nan", "inf", "null", "true", "false")  # Hydra reads these as non-names
    if key in GROUPS and (literal or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)):
        names = sorted(REGISTRY) if key == "method" else []
        names += sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
        raise UsageError(
            f"{key}={value!r} is not a {key} name; choose one of {', '.join(sorted(set(names)))}"
        )


def hydra_string(text: str) -> str:
    """``text`` as a quoted override value that Hydra reads back verbatim: quotes escaped, and the
    backslashes before them or before an interpolation (``${``) doubled; others are kept as they are."""
    text = re.sub(r"(\\+)(?='|\$\{|$)", lambda m: m.group(1) * 2, text)
    return "'" + text.replace("'", "\\'").replace("${", "\\${") + "'"


def _hydra_compose(overrides: list[str], root: str = RUN_ROOT) -> DictConfig:
    _store_groups()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = hydra_compose(config_name=root, overrides=overrides)
            OmegaConf.to_container(cfg, resolve=True)  # an interpolation of a missing key fails here
            return cfg
    except (HydraException, OmegaConfBaseException, ValueError) as exc:  # Hydra raises some ValueErrors
        raise UsageError(_explain(exc, overrides, root)) from None
    finally:
        GlobalHydra.instance().clear()


def _explain(exc: Exception, overrides: list[str], root: str) -> str:
    """Hydra's error in the user's terms: the key, the value, what is allowed (not Hydra's hints)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    key = getattr(cause, "full_key", None)
    if isinstance(cause, ValidationError) and key:
        return f"{key}={getattr(cause, 'value', '?')} {_wanted(str(key), str(cause))}"
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
        overridden = re.search(r"override '([^']+)'", str(exc))
        return _unknown_key(overridden.group(1) if overridden else str(key), str(key), overrides, root)
    if key:
        return f"{key}: {str(cause).splitlines()[0]}"
    message = " ".join((str(exc).strip() or str(cause).strip() or type(cause).__name__).split())
    message = message.split(" Config search path")[0]  # Hydra's internals, noise to a user
    return f"bad config: {message}"


_TYPE_WORDS = {
    "Integer": "an integer",
    "Float": "a number",
    "bool": "true or false",
    "Boolean": "true or false",
    "String": "text",
}


def _wanted(key: str, message: str) -> str:
    """'is not an integer; it must be ≥ 1' for a value OmegaConf could not convert to the field's type."""
    expected = next((words for name, words in _TYPE_WORDS.items() if name in message), None)
    if expected is None and "field of type" in message:
        expected = message.split("field of type", 1)[1].split("\n")[0].strip(" '")
    text = f"is not {expected}" if expected else "has the wrong type"
    group, _, name = key.partition(".")
    typed = RANGED.get(group)
    fields = {f.name: f for f in dataclasses.fields(typed)} if typed else {}
    if name in fields and "range" in fields[name].metadata:
        text += f"; it must be {fields[name].metadata['range']}"
    return text


def _unknown_key(overridden: str, missing: str, overrides: list[str], root: str) -> str:
    """Name the unknown key and list the valid ones beside it (from the config without that override)."""
    parent = missing.rpartition(".")[0]
    groups = [o for o in overrides if "." not in o.split("=", 1)[0]]  # method=steer etc. pick the keys
    try:
        if overridden in (o.split("=", 1)[0].lstrip("+~") for o in groups):
            raise KeyError(overridden)  # a bad group choice: do not recompose the same failing config
        node = _hydra_compose(groups, root)
        for part in filter(None, parent.split(".")):
            node = node[part]
        valid = sorted(str(k) for k in node.keys())
    except (UsageError, KeyError, AttributeError, OmegaConfBaseException):
        valid = []
    where = f" of {parent}" if parent else ""
    listing = f"; valid keys{where}: {', '.join(valid)}" if valid else ""
    return f"unknown key {overridden!r}{listing}"


def to_dict(node: Any) -> dict[str, Any]:
    """A config node as a plain, resolved dict."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def method_knobs(cfg: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in to_dict(cfg.method).items() if k not in METHOD_KEYS}


def validate(cfg: DictConfig) -> None:
    """The one validation pass: ranges and finiteness of every knob, then the rules across knobs."""
    if cfg.backend not in ("local", "verl"):
        raise UsageError(f"backend={cfg.backend!r} is unknown; choose local or verl")
    schema.check_keys("", cfg, schema.RunSchema)
    for group, typed in schema.TYPED.items():
        schema.check_keys(f"{group}.", cfg[group], typed)
        schema.check_ranges(group, cfg[group], typed)
    knobs = method_knobs(cfg)
    schema.check_finite("method", knobs)
    try:
        get_method(cfg.method.name).make_config(**knobs)
    except MethodError as exc:
        raise UsageError(f"method {cfg.method.name}: {exc}") from None
    t = cfg.trainer
    rollouts = int(t.prompts_per_step) * int(t.samples_per_prompt)
    if rollouts % int(t.minibatches):
        raise UsageError(
            f"trainer.minibatches={t.minibatches} must divide prompts_per_step × samples_per_prompt = {rollouts}"
        )
    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(t.device)):
        raise UsageError(f"trainer.device={t.device} is unknown; choose cpu, cuda or cuda:N")
    if cfg.backend == "local":
        _validate_local(cfg)


def _validate_local(cfg: DictConfig) -> None:
    """The embedded backend's task knobs (typed by the task's dataclass) and model shape."""
    params = to_dict(cfg.task)
    name = str(params.pop("name", ""))
    if name not in ALL_TASKS:
        raise UsageError(f"task={name!r} is unknown; choose one of {', '.join(sorted(ALL_TASKS))}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(ALL_TASKS[name]), params)
    except ValidationError as exc:
        raise UsageError(f"task.{exc.full_key}={exc.value} {_wanted('', str(exc))}") from None
    except (ConfigKeyError, ConfigAttributeError) as exc:
        valid = sorted(str(k) for k in OmegaConf.structured(ALL_TASKS[name]).keys() if k != "name")
        raise UsageError(
            f"unknown key 'task.{exc.full_key}' for task {name}; valid keys: {', '.join(valid)}"
        ) from None
    task_knobs = {k: v for k, v in to_dict(typed).items() if k != "name"}
    schema.check_finite("task", task_knobs)
    if cfg.model.hf_path and not Path(cfg.model.hf_path).expanduser().is_dir():
        raise UsageError(
            f"model.hf_path={cfg.model.hf_path} is not a directory (a Hugging Face model folder)"
        )
    task = get_task(name, model_path=cfg.model.hf_path, **task_knobs)  # a text task loads the tokenizer
    if cfg.model.hf_path:
        return
    m = cfg.model
    try:
        ModelConfig(
            vocab_size=task.tokenizer.vocab_size,
            n_layer=m.n_layer,
            n_head=m.n_head,
            d_model=m.d_model,
            max_seq_len=m.max_seq_len,
        )
    except UsageError as exc:
        raise UsageError(f"model: {exc}") from None
    longest = task.prompt_len + task.max_response_len - 1  # the last sampled token is never fed back
    if longest > m.max_seq_len:
        raise UsageError(
            f"model.max_seq_len={m.max_seq_len} is too short for task {name}: its prompts and responses "
            f"need {longest} positions"
        )
