"""The verl command of one run, composed from the run's typed config (``steerbench.config.compose``).

    cfg = compose(["backend=verl", "method=steer", "scenario=release", "model.hf_path=/models/Qwen2.5-Math-7B",
                   "verl.train_files=dapo.parquet", "verl.val_files=aime24.parquet"])
    launch = build_verl_launch(cfg, run_dir)
    launch.command      # [sys.executable, "-m", "steerbench.verl.main_ppo", *overrides]   (local launcher)
    launch.env          # VERL_FILE_LOGGER_PATH (per attempt), WANDB_MODE, ...

Everything that decides the run comes from ``cfg``: the method's knobs, with the scenario's clipping already
applied by ``compose`` (``cfg.method``); ``cfg.scenario.random_reward``; the batch sizes of the preset
``experiments/verl/<cfg.verl.preset>.yaml``; then ``cfg.verl.overrides``, raw verl overrides applied last.
This module only translates: knob → verl field (:mod:`steerbench.verl.losses`), and the launcher.

Entry module: ``verl.trainer.main_ppo`` for methods that verl's registries serve alone, and
``steerbench.verl.main_ppo`` (same config, plus the shim of :mod:`steerbench.verl.shim` and an exit-2
pre-flight) for methods that need entropy, reference or π_old sequence log-probs, or that update a knob
between steps, and for every run on the ray launcher (its TaskRunner relays the metrics back).

Validation (``validate=True``): the overrides are composed against verl's own ``ppo_trainer.yaml`` with
Hydra's compose API, ``verl.utils.config.validate_config`` runs, the actor section is converted to verl's
dataclasses (where unknown ``policy_loss`` keys fail in verl ≥0.6), and the loss/estimator names are
checked in verl's registries after loading the plug-in. Any failure raises ``UsageError``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import string
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from steerbench.config import CONFIG_DIR, method_knobs
from steerbench.errors import UsageError
from steerbench.methods import REGISTRY
from steerbench.runstore import atomic_write_bytes
from steerbench.verl.hook import HOOK as PLUGIN_HOOK
from steerbench.verl.losses import (
    ACTOR_NATIVE,
    ALGORITHM_NATIVE,
    POLICY_LOSS_CONFIG_TARGET,
    estimator_name,
    loss_name,
    missing_registrations,
    register_all,
    shim_needs,
)
from steerbench.verl.omega import OMEGA_EVERY_KEY
from steerbench.verl.relay import ENV_VAR as RELAY_ENV_VAR
from steerbench.verl.relay import collect

# verl's load_module imports "pkg://" paths by module name: resolved on the node that scores, not here
REWARD_PATH = "pkg://steerbench.rewards"
REWARD_NAME = "compute_score_with_acc"
LAUNCHERS = ("local", "ray", "slurm")
# the `ray` console script of this environment (a venv's bin/ need not be on PATH)
RAY_CLI = (sys.executable, "-m", "ray.scripts.scripts")
# loads the plug-in in every Ray worker verl starts (a Ray job sets it in its runtime env instead)
RAY_HOOK_OVERRIDE = f"+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={PLUGIN_HOOK}"


def preset_dir() -> Path:
    return CONFIG_DIR / "verl"


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
        Path(self.script_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(self.script_path), self.script.encode())

    def run(self, check: bool = True):
        """Run it to the end. local: training in a subprocess; ray: ``ray job submit`` (waits, streams the
        job's logs; the relayed metrics land in ``log_path``); slurm: ``sbatch`` (returns once queued)."""
        self.write_script()
        Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        if self.launcher != "ray":
            return subprocess.run(self.command, env={**os.environ, **self.env}, check=check)
        assert self.job_dir is not None
        Path(self.job_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.job_dir) / "launch.json").write_text(json.dumps(self.to_json(), indent=2))
        return self._submit_ray_job(check)

    def _submit_ray_job(self, check: bool):
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


def _data_sources(files: Any) -> list[str]:
    """Distinct ``data_source`` values of verl parquet files (for random_reward's train-only coin flips)."""
    import pyarrow.parquet as pq

    sources: set[str] = set()
    for f in [files] if isinstance(files, str) else list(files):
        if not Path(f).exists():
            raise UsageError(
                f"scenario=random_reward reads the data sources of {f}, which does not exist here"
            )
        sources.update(
            str(x) for x in pq.read_table(f, columns=["data_source"]).column(0).unique().to_pylist()
        )
    return sorted(sources)


def next_attempt(log_dir: Path) -> int:
    if not log_dir.exists():
        return 0
    return len(list(log_dir.glob("attempt-*.jsonl")))


def load_preset(name: str) -> dict[str, Any]:
    """``experiments/verl/<name>.yaml``: verl overrides (dotted keys) for batch sizes, lengths, lr, schedule."""
    path = preset_dir() / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in preset_dir().glob("*.yaml"))
        raise UsageError(f"unknown verl.preset {name!r}; choose one of: {', '.join(names)}")
    preset = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    assert isinstance(preset, dict)
    return {str(k): v for k, v in preset.items()}


def check_inputs(cfg: DictConfig, launcher: str) -> None:
    """Usage errors for what verl would only find after the cluster started."""
    v = cfg.verl
    if not cfg.model.hf_path:
        raise UsageError("--backend verl needs --model PATH (a Hugging Face causal-LM directory)")
    if not v.train_files or not v.val_files:
        raise UsageError("--backend verl needs --train-data FILE and --val-data FILE (verl-format parquet)")
    if launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {launcher!r}; choose one of: {', '.join(LAUNCHERS)}")
    if launcher == "ray":
        return  # paths of the cluster's storage, not necessarily visible here
    for key in ("train_files", "val_files"):
        if not Path(v[key]).exists():
            raise UsageError(f"{key.replace('_files', ' data')} file {v[key]} does not exist")


def compose_overrides(cfg: DictConfig, run_dir: Path, *, ray_hook_in_overrides: bool = True) -> list[str]:
    """The full override list for verl's ``ppo_trainer`` config."""
    method = str(cfg.method.name)
    knobs = method_knobs(cfg)
    needs = shim_needs(method, knobs)
    v, t = cfg.verl, cfg.trainer
    seed = int(t.seed)
    o: dict[str, Any] = load_preset(str(v.preset))
    o.update(
        {
            "algorithm.adv_estimator": estimator_name(method),
            "algorithm.use_kl_in_reward": False,
            "data.train_files": str(v.train_files),
            "data.val_files": str(v.val_files),
            "data.seed": seed,
            "actor_rollout_ref.model.path": str(cfg.model.hf_path),
            "actor_rollout_ref.rollout.name": str(v.get("rollout_name") or "vllm"),
            "actor_rollout_ref.rollout.seed": seed,
            "actor_rollout_ref.actor.data_loader_seed": seed,
            "actor_rollout_ref.actor.policy_loss.loss_mode": loss_name(method),
            "actor_rollout_ref.actor.policy_loss._target_": POLICY_LOSS_CONFIG_TARGET,
            "actor_rollout_ref.actor.entropy_coeff": 0.0,  # entropy_bonus is a steerbench loss term, not verl's
            "actor_rollout_ref.actor.calculate_entropy": needs.entropy,
            # kl: verl computes ref log-probs only with use_kl_loss; its own term is zeroed, ours adds β·KL
            "actor_rollout_ref.actor.use_kl_loss": needs.ref_log_prob,
            "actor_rollout_ref.actor.kl_loss_coef": 0.0,
            "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
            "trainer.logger": ["console", "file", "wandb"] if t.wandb else ["console", "file"],
            "trainer.project_name": "steerbench",
            "trainer.experiment_name": run_dir.name or method,
            "trainer.n_gpus_per_node": int(v.n_gpus_per_node),
            "trainer.nnodes": int(v.nnodes),
            "trainer.total_training_steps": int(t.steps),
            "trainer.default_local_dir": str(run_dir / "checkpoints"),
            "hydra.run.dir": str(run_dir / "verl_hydra"),  # verl's composed config, kept with the run
            "reward.custom_reward_function.path": REWARD_PATH,
            "reward.custom_reward_function.name": REWARD_NAME,
        }
    )
    for knob, verl_field in ACTOR_NATIVE.items():
        o[f"actor_rollout_ref.actor.{verl_field}"] = knobs[knob]
    for knob, verl_field in ALGORITHM_NATIVE.items():
        if knob in knobs:
            o[f"algorithm.{verl_field}"] = knobs[knob]
    own = {k: x for k, x in sorted(knobs.items()) if k not in ACTOR_NATIVE and k not in ALGORITHM_NATIVE}
    ordered = [f"{k}={hydra_value(x)}" for k, x in o.items()]
    ordered += [
        f"++actor_rollout_ref.actor.policy_loss.{k}={hydra_value(x)}" for k, x in own.items() if x is not None
    ]
    if estimator_name(method) != "grpo":  # shapers read their knobs from the algorithm section
        ordered += [f"++algorithm.steerbench.{k}={hydra_value(x)}" for k, x in own.items() if x is not None]
    if cfg.scenario.random_reward:
        ordered += random_reward_overrides(cfg, seed)
    if t.omega_every:  # in-training Ω, measured by the shimmed trainer (steerbench/verl/omega.py)
        ordered.append(f"+trainer.{OMEGA_EVERY_KEY}={int(t.omega_every)}")
    if ray_hook_in_overrides:
        ordered.append(RAY_HOOK_OVERRIDE)
    ordered.extend(str(x) for x in v.overrides)
    return ordered


def random_reward_overrides(cfg: DictConfig, seed: int) -> list[str]:
    """Coin-flip rewards on the training data sources only, so validation still measures the model."""
    train = _data_sources(cfg.verl.train_files)
    overlap = sorted(set(train) & set(_data_sources(cfg.verl.val_files)))
    if overlap:
        raise UsageError(
            f"random_reward flips coins by data_source, but {overlap} appear in both train and val files; "
            "validation would be random too. Use validation sets with other data sources."
        )
    return [
        f"+reward.custom_reward_function.reward_kwargs.random_reward_sources={hydra_value(train)}",
        f"+reward.custom_reward_function.reward_kwargs.seed={seed}",
    ]


def validate_overrides(overrides: list[str], method: str | None = None) -> Any:
    """Compose against verl's ``ppo_trainer`` config and convert the actor to verl's dataclasses."""
    try:
        from hydra import compose, initialize_config_module
        from hydra.core.global_hydra import GlobalHydra
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import omega_conf_to_dataclass, validate_config
    except ImportError as exc:
        raise UsageError(f"cannot validate against verl's config: {exc}; install steerbench[verl]") from exc
    register_all()  # as importing steerbench.verl_plugin does; Hydra imports the _target_ module itself
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


def slurm_script(run_cmd: list[str], env: dict[str, str], cfg: DictConfig, out: Path) -> str:
    """``experiments/verl/slurm.sbatch`` filled in; ``verl.slurm.{partition,time,cpus_per_task}`` if given."""
    slurm = cfg.verl.get("slurm") or {}
    extra = [f"#SBATCH --{key}={slurm[key]}" for key in ("partition", "time") if slurm.get(key)]
    template = string.Template((preset_dir() / "slurm.sbatch").read_text())
    return template.substitute(
        job_name=out.name or "steerbench",
        nnodes=int(cfg.verl.nnodes),
        gpus_per_node=int(cfg.verl.n_gpus_per_node),
        cpus_per_task=int(slurm.get("cpus_per_task") or 32),
        out=out,
        extra_sbatch="\n".join(extra),
        exports="\n".join(f"export {k}={shlex.quote(x)}" for k, x in sorted(env.items())),
        ray=" ".join(shlex.quote(c) for c in RAY_CLI),
        run_command=" ".join(shlex.quote(c) for c in run_cmd),
    )


def build_verl_launch(
    cfg: DictConfig, run_dir: Path, *, validate: bool = True, attempt: int | None = None
) -> VerlLaunch:
    """Compose (and by default validate) the verl command for the run ``cfg`` in ``run_dir``.

    Raises UsageError on bad input. ``cfg`` is what ``steerbench.config.compose`` returns.
    """
    launcher = str(cfg.verl.launcher)
    check_inputs(cfg, launcher)
    out = Path(run_dir)
    method = str(cfg.method.name)
    overrides = compose_overrides(cfg, out, ray_hook_in_overrides=launcher != "ray")
    if validate:
        validate_overrides(overrides if launcher != "ray" else [*overrides, RAY_HOOK_OVERRIDE], method=method)
    # scheduled knobs (pos_adv_reweight's λ) are updated between steps by the shimmed trainer
    needs_shim = (
        shim_needs(method, method_knobs(cfg)).any
        or REGISTRY[method].schedule is not None
        or bool(cfg.trainer.omega_every)
    )
    log_dir = out / "verl_logs"
    k = next_attempt(log_dir) if attempt is None else int(attempt)
    log_path = str((log_dir / f"attempt-{k:03d}.jsonl").absolute())
    env = {
        "VERL_FILE_LOGGER_PATH": log_path,
        "WANDB_MODE": "offline" if cfg.trainer.wandb else "disabled",
        "PYTHONUNBUFFERED": "1",
    }
    shimmed = needs_shim or launcher == "ray"
    entry = "steerbench.verl.main_ppo" if shimmed else "verl.trainer.main_ppo"
    # slurm runs on nodes that share this environment: the python steerbench runs in, not PATH's python3;
    # a Ray job runs in the cluster's own environment, where `python` is the cluster's
    py = "python" if launcher == "ray" else sys.executable
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
            str(cfg.verl.ray_address or "http://127.0.0.1:8265"),
            "--working-dir",
            job_dir,
            "--runtime-env-json",
            json.dumps(runtime_env, sort_keys=True),
            "--",
            *run_cmd,
        ]
    else:
        script = slurm_script(run_cmd, env, cfg, out)
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
        meta={"method": method, "knobs": method_knobs(cfg), "scenario": str(cfg.scenario.name), "attempt": k},
    )
