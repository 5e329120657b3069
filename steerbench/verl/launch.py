"""Compose, validate and launch a verl 0.9.1 run of one steerbench method.

    launch = build_verl_launch({"method": "steer", "knobs": {"lambda_min": 0.5}, "scenario": "extreme",
                                "model_path": "/models/Qwen2.5-Math-7B", "train_files": ..., "val_files": ...,
                                "out": "runs/g/steer__extreme__dapo__seed0", "n_gpus_per_node": 8})
    launch.command      # ["python", "-m", "steerbench.verl.main_ppo", *overrides]   (local launcher)
    launch.env          # VERL_FILE_LOGGER_PATH (per attempt), WANDB_MODE, ...
    launch.to_json()    # {"command": [...], "overrides": [...], "env": {...}}

Entry module: ``verl.trainer.main_ppo`` for methods that verl's registries serve alone, and
``steerbench.verl.main_ppo`` (same config, plus the shim of :mod:`steerbench.verl.shim` and an exit-2
pre-flight) for methods that need entropy, reference or π_old sequence log-probs, or that update a knob
between steps (``pos_adv_reweight``'s λ schedules, every schedule).

Validation (``validate=True``): the overrides are composed against verl's own ``ppo_trainer.yaml`` with
Hydra's compose API, ``verl.utils.config.validate_config`` runs, the actor section is converted to verl's
dataclasses (``omega_conf_to_dataclass``, which is where unknown ``policy_loss`` keys fail in verl ≥0.6),
and the loss/estimator names are checked in verl's registries after loading the plug-in. Any failure
raises :class:`steerbench.errors.UsageError` naming the problem.

Config precedence for the method's knobs: method defaults < scenario (``extreme`` sets ε) < ``knobs``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerbench.errors import UsageError
from steerbench.verl.hook import HOOK as PLUGIN_HOOK
from steerbench.verl.relay import ENV_VAR as RELAY_ENV_VAR

# verl's load_module imports "pkg://" paths by module name: resolved on the node that scores, not here
REWARD_PATH = "pkg://steerbench.verl.reward"
REWARD_NAME = "compute_score_with_acc"
LAUNCHERS = ("local", "ray", "slurm")
# the `ray` console script of this environment (a venv's bin/ need not be on PATH)
RAY_CLI = (sys.executable, "-m", "ray.scripts.scripts")

# scenario → knob overrides and reward mode; "standard" keeps each method's own clipping
# (ε 0.2/0.2 for the baseline; clip_higher and steer declare 0.2/0.28).
SCENARIOS: dict[str, dict[str, Any]] = {
    "standard": {"knobs": {}, "random_reward": False},
    "extreme": {"knobs": {"clip_low": 0.99, "clip_high": 5.0}, "random_reward": False},
    "random_reward": {"knobs": {}, "random_reward": True},
}

# The STEER release's training setup (Qwen2.5-Math-7B, 8×H20), as verl 0.9.1 overrides.
PAPER_PRESET: dict[str, Any] = {
    "data.train_batch_size": 512,
    "data.max_prompt_length": 1024,
    "data.max_response_length": 3072,
    "data.filter_overlong_prompts": True,
    "data.truncation": "left",
    "actor_rollout_ref.model.use_remove_padding": True,
    "actor_rollout_ref.model.enable_gradient_checkpointing": True,
    "actor_rollout_ref.actor.optim.lr": 1e-6,
    "actor_rollout_ref.actor.ppo_mini_batch_size": 32,
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 8,
    "actor_rollout_ref.actor.ppo_epochs": 1,
    "actor_rollout_ref.rollout.n": 8,
    "actor_rollout_ref.rollout.temperature": 1.0,
    "actor_rollout_ref.rollout.gpu_memory_utilization": 0.6,
    "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 8,
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": 8,
    "trainer.val_before_train": True,
    "trainer.test_freq": 10,
    "trainer.save_freq": 20,
    "trainer.resume_mode": "auto",
}
PRESETS = {"paper": PAPER_PRESET, "none": {}}
# the release's clipping for STEER: ε 0.2/0.28, dual clip c = 10 (steer's own defaults already say so)


@dataclass
class VerlLaunch:
    command: list[str]
    overrides: list[str]
    env: dict[str, str]
    launcher: str = "local"
    script: str | None = None  # the sbatch script (slurm launcher)
    script_path: str | None = None
    log_path: str = ""  # this attempt's metrics file on this machine (local/slurm: VERL_FILE_LOGGER_PATH)
    job_dir: str | None = None  # ray launcher: the job's working_dir (shipped to the cluster; the job's cwd)
    entry_module: str = "verl.trainer.main_ppo"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "command": list(self.command),
            "overrides": list(self.overrides),
            "env": dict(self.env),
        }
        if self.script is not None:
            out["script"] = self.script
        return out

    def write_script(self) -> None:
        """Write the sbatch script where ``command`` expects it (slurm launcher only)."""
        if self.script is None or self.script_path is None:
            return
        path = Path(self.script_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.script)
        os.replace(tmp, path)

    def run(self, check: bool = True):
        """Run it to the end. local: training in a subprocess; ray: ``ray job submit`` (waits, streams the
        job's logs; the relayed metrics land in ``log_path``); slurm: ``sbatch`` (returns once queued)."""
        import subprocess

        self.write_script()
        Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        if self.launcher != "ray":
            return subprocess.run(self.command, env={**os.environ, **self.env}, check=check)
        assert self.job_dir is not None
        Path(self.job_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.job_dir) / "launch.json").write_text(json.dumps(self.to_json(), indent=2))
        return self._submit_ray_job(check)

    def _submit_ray_job(self, check: bool):
        import subprocess

        from steerbench.runstore import atomic_write_bytes
        from steerbench.verl.relay import collect

        relayed: list[str] = []
        with subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                relayed.extend(collect([line]))
        if relayed:
            atomic_write_bytes(Path(self.log_path), "".join(r + "\n" for r in relayed).encode())
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, self.command)
        return subprocess.CompletedProcess(self.command, proc.returncode)


def hydra_value(value: Any) -> str:
    """A Python value as a Hydra override value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    s = str(value)
    if s and all(c.isalnum() or c in "_-./:" for c in s) and not s[0].isdigit() or s in ("token-mean",):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """Dotted lookup in a dict-like config (dict, OmegaConf DictConfig)."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, Mapping) or hasattr(node, "get"):
            try:
                node = node.get(part, None)
            except Exception:  # noqa: BLE001
                node = None
        else:
            node = None
        if node is None:
            return default
    return node


def _plain(value: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return value


def resolve_method(cfg: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(method name, user knobs, scenario) from the config; unknown names raise UsageError."""
    from steerbench.methods import REGISTRY

    method = _plain(_get(cfg, "method"))
    knobs: dict[str, Any] = {}
    if isinstance(method, Mapping):
        method = dict(method)
        name = method.pop("name", None)
        knobs.update(method)
        method = name
    if not method:
        raise UsageError("no method given; set method=<name> (one of: " + ", ".join(sorted(REGISTRY)) + ")")
    if method not in REGISTRY:
        raise UsageError(f"unknown method {method!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    knobs.update(_plain(_get(cfg, "knobs", {})) or {})
    scenario = _plain(_get(cfg, "scenario", "standard"))
    if isinstance(scenario, Mapping):
        scen = {
            "knobs": {},
            "random_reward": False,
            **{k: v for k, v in scenario.items() if k in ("random_reward",)},
        }
        scen["knobs"] = {k: v for k, v in scenario.items() if k in ("clip_low", "clip_high", "clip_c")}
        scen["name"] = scenario.get("name", "custom")
    elif scenario in SCENARIOS:
        scen = {**SCENARIOS[scenario], "name": scenario}
    else:
        raise UsageError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    return str(method), knobs, scen


def resolved_knobs(method: str, knobs: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """Method defaults < scenario < user knobs, validated by the method's typed config."""
    from steerbench.methods import REGISTRY, MethodError

    spec = REGISTRY[method]
    merged = {**spec.knobs(), **scenario.get("knobs", {}), **knobs}
    try:
        spec.make_config(**merged)
    except (MethodError, TypeError) as exc:
        raise UsageError(f"bad knobs for method {method!r}: {exc}") from exc
    return merged


def _data_sources(files: Any) -> list[str]:
    """Distinct ``data_source`` values of verl parquet files (for random_reward's train-only coin flips)."""
    sources: set[str] = set()
    for f in [files] if isinstance(files, str) else list(files or []):
        if not Path(f).exists():
            continue
        import pyarrow.parquet as pq

        sources.update(
            str(s) for s in pq.read_table(f, columns=["data_source"]).column(0).unique().to_pylist()
        )
    return sorted(sources)


def next_attempt(log_dir: Path) -> int:
    if not log_dir.exists():
        return 0
    return len(list(log_dir.glob("attempt-*.jsonl")))


def compose_overrides(cfg: Any, *, ray_hook_in_overrides: bool = True) -> tuple[list[str], dict[str, Any]]:
    """The full override list for verl's ``ppo_trainer`` config, and facts about it for the launcher."""
    from steerbench.methods import REGISTRY
    from steerbench.verl.losses import (
        ACTOR_NATIVE,
        ALGORITHM_NATIVE,
        POLICY_LOSS_CONFIG_TARGET,
        estimator_name,
        loss_name,
        shim_needs,
    )

    method, user_knobs, scenario = resolve_method(cfg)
    knobs = resolved_knobs(method, user_knobs, scenario)
    needs = shim_needs(method, knobs)
    preset_name = str(_get(cfg, "preset", "paper"))
    if preset_name not in PRESETS:
        raise UsageError(f"unknown preset {preset_name!r}; choose one of: {', '.join(PRESETS)}")

    model_path = _get(cfg, "model_path") or _get(cfg, "model.path")
    train_files = _plain(_get(cfg, "train_files") or _get(cfg, "data.train_files"))
    val_files = _plain(_get(cfg, "val_files") or _get(cfg, "data.val_files"))
    missing = [
        n
        for n, v in (("model_path", model_path), ("train_files", train_files), ("val_files", val_files))
        if not v
    ]
    if missing:
        raise UsageError(
            f"the verl backend needs {', '.join(missing)} (a local HF model dir and verl parquet files)"
        )

    out = Path(str(_get(cfg, "out", "runs/verl")))
    project = str(_get(cfg, "project", "steerbench"))
    experiment = str(_get(cfg, "experiment", out.name or method))
    o: dict[str, Any] = dict(PRESETS[preset_name])
    o.update(
        {
            "algorithm.adv_estimator": estimator_name(method),
            "algorithm.use_kl_in_reward": False,
            "data.train_files": train_files,
            "data.val_files": val_files,
            "actor_rollout_ref.model.path": str(model_path),
            "actor_rollout_ref.rollout.name": str(_get(cfg, "rollout_name", "vllm")),
            "actor_rollout_ref.actor.policy_loss.loss_mode": loss_name(method),
            "actor_rollout_ref.actor.policy_loss._target_": POLICY_LOSS_CONFIG_TARGET,
            "actor_rollout_ref.actor.entropy_coeff": 0.0,  # entropy_bonus is a steerbench loss term, not verl's
            "actor_rollout_ref.actor.calculate_entropy": needs.entropy,
            # kl: verl computes ref log-probs only with use_kl_loss; its own term is zeroed, ours adds β·KL
            "actor_rollout_ref.actor.use_kl_loss": needs.ref_log_prob,
            "actor_rollout_ref.actor.kl_loss_coef": 0.0,
            "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
            "trainer.logger": ["console", "file", "wandb"]
            if _get(cfg, "wandb", False)
            else ["console", "file"],
            "trainer.project_name": project,
            "trainer.experiment_name": experiment,
            "trainer.n_gpus_per_node": int(_get(cfg, "n_gpus_per_node", _get(cfg, "gpus", 8))),
            "trainer.nnodes": int(_get(cfg, "nnodes", 1)),
            "trainer.default_local_dir": str(out / "checkpoints"),
            "reward.custom_reward_function.path": REWARD_PATH,
            "reward.custom_reward_function.name": REWARD_NAME,
        }
    )
    for key, verl_key in (("steps", "trainer.total_training_steps"), ("epochs", "trainer.total_epochs")):
        if _get(cfg, key) is not None:
            o[verl_key] = int(_get(cfg, key))
    seed = _get(cfg, "seed")
    if seed is not None:
        o["data.seed"] = int(seed)
        o["actor_rollout_ref.rollout.seed"] = int(seed)
        o["actor_rollout_ref.actor.data_loader_seed"] = int(seed)
    for knob, verl_field in ACTOR_NATIVE.items():
        o[f"actor_rollout_ref.actor.{verl_field}"] = knobs[knob]
    for knob, verl_field in ALGORITHM_NATIVE.items():
        if knob in knobs:
            o[f"algorithm.{verl_field}"] = knobs[knob]
    method_knobs = {k: v for k, v in knobs.items() if k not in ACTOR_NATIVE and k not in ALGORITHM_NATIVE}
    ordered = [f"{k}={hydra_value(v)}" for k, v in o.items()]
    for k, v in sorted(method_knobs.items()):
        if v is not None:
            ordered.append(f"++actor_rollout_ref.actor.policy_loss.{k}={hydra_value(v)}")
    if estimator_name(method) != "grpo":
        for k, v in sorted(method_knobs.items()):
            if v is not None:
                ordered.append(f"++algorithm.steerbench.{k}={hydra_value(v)}")
    if scenario.get("random_reward"):
        sources = _plain(_get(cfg, "train_data_sources")) or _data_sources(train_files)
        overlap = sorted(set(sources) & set(_data_sources(val_files)))
        if overlap:
            raise UsageError(
                f"random_reward flips coins by data_source, but {overlap} appear in both train and val files; "
                "validation would be random too. Use validation sets with other data sources."
            )
        ordered.append(
            f"+reward.custom_reward_function.reward_kwargs.random_reward_sources={hydra_value(sources)}"
        )
        ordered.append(f"+reward.custom_reward_function.reward_kwargs.seed={int(seed or 0)}")
    if ray_hook_in_overrides:
        ordered.append(f"+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={PLUGIN_HOOK}")
    ordered.extend(str(x) for x in (_plain(_get(cfg, "overrides")) or []))
    facts = {
        "method": method,
        "knobs": knobs,
        "scenario": scenario["name"],
        # scheduled knobs (pos_adv_reweight's λ) are updated between steps by the shimmed trainer
        "needs_shim": needs.any or REGISTRY[method].schedule is not None,
        "out": out,
    }
    return ordered, facts


def validate_overrides(overrides: list[str], method: str | None = None) -> Any:
    """Compose against verl's ``ppo_trainer`` config and convert the actor to verl's dataclasses."""
    try:
        from hydra import compose, initialize_config_module
        from hydra.core.global_hydra import GlobalHydra
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import omega_conf_to_dataclass, validate_config
    except ImportError as exc:
        raise UsageError(f"cannot validate against verl's config: {exc}; install steerbench[verl]") from exc
    import steerbench.verl_plugin  # noqa: F401  (registers; makes the _target_ importable)
    from steerbench.verl.losses import missing_registrations

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            config = compose(config_name="ppo_trainer", overrides=list(overrides))
    except Exception as exc:  # noqa: BLE001 - hydra raises several types; all mean a bad override
        raise UsageError(f"verl's Hydra config rejects the overrides: {exc}") from exc
    finally:
        GlobalHydra.instance().clear()
    try:
        omega_conf_to_dataclass(config.actor_rollout_ref.actor)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Disabled critic as adv_estimator != gae" is expected for GRPO
            validate_config(
                config=config,
                use_reference_policy=need_reference_policy(config),
                use_critic=need_critic(config),
            )
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"verl rejects the config: {type(exc).__name__}: {exc}") from exc
    if method is not None:
        missing = missing_registrations(method)
        if missing:
            raise UsageError(
                f"pre-flight: {', '.join(missing)} not registered in verl after loading the plug-in"
            )
    return config


def _slurm_script(run_cmd: list[str], env: dict[str, str], cfg: Any, out: Path) -> str:
    """Ray-on-SLURM, after verl's ``examples/slurm/ray_on_slurm.slurm``: one task per node, head + workers."""
    nnodes = int(_get(cfg, "nnodes", 1))
    gpus = int(_get(cfg, "n_gpus_per_node", _get(cfg, "gpus", 8)))
    cpus = int(_get(cfg, "slurm.cpus_per_task", 32))
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={_get(cfg, 'experiment', out.name or 'steerbench')}",
        f"#SBATCH --nodes={nnodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus}",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --output={out}/slurm-%j.out",
    ]
    if _get(cfg, "slurm.partition"):
        lines.append(f"#SBATCH --partition={_get(cfg, 'slurm.partition')}")
    if _get(cfg, "slurm.time"):
        lines.append(f"#SBATCH --time={_get(cfg, 'slurm.time')}")
    lines += ["set -euo pipefail", ""]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines += [
        "",
        'nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        "nodes_array=($nodes)",
        "head_node=${nodes_array[0]}",
        'head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)',
        'if [[ "$head_node_ip" == *" "* ]]; then',
        "  IFS=' ' read -ra ADDR <<<\"$head_node_ip\"",
        "  if [[ ${#ADDR[0]} -gt 16 ]]; then head_node_ip=${ADDR[1]}; else head_node_ip=${ADDR[0]}; fi",
        "fi",
        "port=6379",
        "ip_head=$head_node_ip:$port",
        "export ip_head",
        'echo "Ray head at $ip_head"',
        'srun --nodes=1 --ntasks=1 -w "$head_node" \\',
        '  ray start --head --node-ip-address="$head_node_ip" --port=$port \\',
        '  --num-cpus "${SLURM_CPUS_PER_TASK}" --num-gpus "${SLURM_GPUS_PER_NODE}" --block &',
        "sleep 10",
        "worker_num=$((SLURM_JOB_NUM_NODES - 1))",
        "for ((i = 1; i <= worker_num; i++)); do",
        "  node_i=${nodes_array[$i]}",
        '  srun --nodes=1 --ntasks=1 -w "$node_i" \\',
        '    ray start --address "$ip_head" --num-cpus "${SLURM_CPUS_PER_TASK}" --num-gpus "${SLURM_GPUS_PER_NODE}" --block &',
        "  sleep 5",
        "done",
        "",
        'export RAY_ADDRESS="$ip_head"',
        'srun --overlap --nodes=1 --ntasks=1 -w "$head_node" \\',
        "  " + " ".join(shlex.quote(c) for c in run_cmd),
        "",
    ]
    return "\n".join(lines)


def build_verl_launch(
    cfg: Any,
    *,
    launcher: str | None = None,
    validate: bool = True,
    attempt: int | None = None,
    python: str | None = None,
) -> VerlLaunch:
    """Compose (and by default validate) the verl command for one run. Raises UsageError on bad input.

    ``cfg`` keys (dict or DictConfig): ``method`` (name or {name, **knobs}), ``knobs``, ``scenario``
    (standard|extreme|random_reward or a mapping), ``model_path``, ``train_files``, ``val_files``,
    ``out`` (run dir), ``n_gpus_per_node``, ``nnodes``, ``steps``, ``seed``, ``preset`` (paper|none),
    ``project``, ``experiment``, ``wandb``, ``overrides`` (raw, applied last), ``launcher``,
    ``ray_address``, ``slurm.{partition,time,cpus_per_task}``, ``train_data_sources``.
    """
    launcher = str(launcher or _get(cfg, "launcher", "local"))
    if launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {launcher!r}; choose one of: {', '.join(LAUNCHERS)}")
    overrides, facts = compose_overrides(cfg, ray_hook_in_overrides=launcher != "ray")
    if validate:
        check = (
            overrides
            if launcher != "ray"
            else [*overrides, f"+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={PLUGIN_HOOK}"]
        )
        validate_overrides(check, method=facts["method"])
    out: Path = facts["out"]
    log_dir = out / "verl_logs"
    k = next_attempt(log_dir) if attempt is None else int(attempt)
    log_path = (
        str((log_dir / f"attempt-{k:03d}.jsonl").resolve())
        if not out.is_absolute()
        else str(log_dir / f"attempt-{k:03d}.jsonl")
    )
    env = {
        "VERL_FILE_LOGGER_PATH": log_path,
        "WANDB_MODE": str(_get(cfg, "wandb_mode", "offline" if _get(cfg, "wandb", False) else "disabled")),
        "PYTHONUNBUFFERED": "1",
    }
    entry = (
        "steerbench.verl.main_ppo" if facts["needs_shim"] or launcher == "ray" else "verl.trainer.main_ppo"
    )
    # slurm runs on nodes that share this environment: the python steerbench runs in, not PATH's python3;
    # a Ray job runs in the cluster's own environment, where `python` is the cluster's
    py = python or ("python" if launcher == "ray" else sys.executable)
    run_cmd = [py, "-m", entry, *overrides]
    script = script_path = job_dir = None
    if launcher == "local":
        command = run_cmd
    elif launcher == "ray":
        # the job's cwd is its shipped working_dir on whichever node runs it: the file logger writes there,
        # and the shimmed TaskRunner relays the lines back through the job's logs (steerbench.verl.relay)
        job_dir = str(out / f"ray_job-{k:03d}")
        job_env = {**env, "VERL_FILE_LOGGER_PATH": Path(log_path).name, RELAY_ENV_VAR: "1"}
        runtime_env = {"worker_process_setup_hook": PLUGIN_HOOK, "env_vars": job_env}
        command = [
            *RAY_CLI,
            "job",
            "submit",
            "--address",
            str(_get(cfg, "ray_address") or "http://127.0.0.1:8265"),
            "--working-dir",
            job_dir,
            "--runtime-env-json",
            json.dumps(runtime_env, sort_keys=True),
            "--",
            *run_cmd,
        ]
    else:
        script = _slurm_script(run_cmd, env, cfg, out)
        script_path = str(out / f"verl_attempt-{k:03d}.sbatch")
        command = ["sbatch", script_path]
    return VerlLaunch(
        command=command,
        overrides=overrides,
        env=env,
        launcher=launcher,
        script=script,
        script_path=script_path,
        log_path=log_path,
        job_dir=job_dir,
        entry_module=entry,
        meta={
            "method": facts["method"],
            "knobs": facts["knobs"],
            "scenario": facts["scenario"],
            "attempt": k,
        },
    )
