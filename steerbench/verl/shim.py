"""The one place steerbench goes beyond verl's registries: extra inputs for STEER, KL, entropy bonus, unlikeliness.

verl 0.9.1 calls a registered policy loss with ``old_log_prob, log_prob, advantages, response_mask,
loss_agg_mode, config, rollout_is_weights`` only, and an advantage estimator with
``token_level_rewards, response_mask, index, config``. Some methods need more:

* ``steer`` needs H_t, the full-vocabulary token entropy; ``entropy_bonus`` needs H_t *with gradient*;
  ``kl`` needs log π_ref. The actor's forward already computes H_t (``model_output["entropy"]`` with
  ``actor.calculate_entropy=true``) and the batch already holds ``ref_log_prob`` (with ``use_kl_loss=true``),
  but ``workers/utils/losses.py::ppo_loss`` drops both before calling the registry.
  :func:`extra_inputs_ppo_loss` wraps ``ppo_loss``: it pads them exactly as ``ppo_loss`` pads ``log_prob``,
  puts them in :data:`steerbench.verl.losses.EXTRA_INPUTS` for the duration of the call, and delegates.
  It is installed on every actor worker through verl's public RPC ``actor_rollout_wg.set_loss_fn``.
  That H_t is the current policy's (π_θ at this micro-batch). π_old's rollout-time entropy, which the
  STEER release uses (STEER's default ``entropy=rollout``), is the batch's ``"entropy"`` (stored by
  ``_compute_old_log_prob``); the wrapper hands it over as ``old_entropy``.
* ``unlikeliness`` ranks each group's samples by mean log π_old. In the trainer process
  :func:`install_advantage_shim` wraps ``verl.trainer.ppo.v1.utils.compute_advantage`` so the estimator
  sees ``data.batch["old_log_probs"]``.

* ``pos_adv_reweight`` updates its knob λ between training steps (``spec.schedule``), from the step's
  entropy. :class:`KnobSchedule` runs in the trainer process: the shimmed trainer wraps the v1 trainer's
  ``PPOTrainer.step(metrics, timing_raw)``, which ``fit`` calls once per global step and which leaves the
  step's ``actor/entropy`` (π_old's entropy on the step's rollouts, from ``_compute_old_log_prob``,
  aggregated with the actor's ``loss_agg_mode``: the mean token entropy for ``token-mean``) in
  ``metrics``. After each step it computes the next knobs and, when they changed, sends a fresh
  ``loss_fn`` (same config, new ``policy_loss.<knob>`` values) through the same ``set_loss_fn`` RPC
  (blocking, so the next ``update_actor`` uses it). The λ per step is also kept in
  ``<trainer.default_local_dir>/steerbench_schedule.json``, so a resumed run continues its schedule.

All are installed by the shimmed trainer (:func:`make_shimmed_trainer`), which
:func:`install_shimmed_trainer` puts in verl's trainer registry under the *same* mode name (``sync`` stays
``sync``) inside :class:`SteerbenchTaskRunner` (entry ``python -m steerbench.verl.main_ppo``).
Everything checks :func:`steerbench.verl.compat.require_verl` first: another verl fails loudly.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import os
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from steerbench.methods import REGISTRY
from steerbench.runstore import atomic_write_json
from steerbench.verl.compat import VerlCompatError, require_verl
from steerbench.verl.losses import (
    ADVANTAGE_INPUTS,
    EXTRA_INPUTS,
    NATIVE_KNOBS,
    PREFIX,
    entropy_needs_grad,
    knobs_from_actor_config,
    register_all,
)
from steerbench.verl.omega import OMEGA_INTERNALS, omega_every
from steerbench.verl.omega import after_actor_update as omega_after_actor_update
from steerbench.verl.relay import ENV_VAR, relay_file

PPO_LOSS_INTERNALS = (
    "verl.workers.utils.losses:ppo_loss",
    "verl.workers.utils.padding:no_padding_2_padding",
    "verl.workers.engine_workers:ActorRolloutRefWorker.set_loss_fn",
)
ADVANTAGE_INTERNALS = ("verl.trainer.ppo.v1.utils:compute_advantage",)
TRAINER_INTERNALS = (
    "verl.trainer.ppo.v1.trainer_base:TRAINER_REGISTRY",
    "verl.trainer.ppo.v1.trainer_base:get_trainer_cls",
    "verl.trainer.main_ppo:TaskRunnerV1",
)
STEP_HOOK_INTERNALS = (
    "verl.trainer.ppo.v1.trainer_base:PPOTrainer.step",
    "verl.trainer.ppo.v1.trainer_base:PPOTrainer.fit",
    "verl.trainer.ppo.v1.trainer_base:PPOTrainer._compute_old_log_prob",
)
ENTROPY_METRIC = "actor/entropy"
SCHEDULE_FILE = "steerbench_schedule.json"


def extra_inputs_ppo_loss(config: Any, model_output: Any, data: Any, dp_group: Any = None):
    """verl's ``ppo_loss`` with the actor's entropy, π_old's entropy and the ref log-probs handed to our losses.

    verl's ``ppo_loss`` subtracts ``entropy_coeff · agg(entropy)`` whenever the forward returned an entropy,
    so with coefficient 0 the full-vocabulary entropy would still sit in the backward graph. Unless the
    method trains through the entropy (``entropy_bonus``), it is detached first.
    """
    from verl.workers.utils.losses import ppo_loss
    from verl.workers.utils.padding import no_padding_2_padding

    extra: dict[str, Any] = {}
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        if not entropy_needs_grad(config):
            entropy = entropy.detach()
            model_output = {**model_output, "entropy": entropy}
        extra["entropy"] = no_padding_2_padding(entropy, data)
    if "ref_log_prob" in data.keys():
        extra["ref_log_prob"] = data.select("ref_log_prob").to_padded_tensor()["ref_log_prob"]
    if "entropy" in data.keys():  # π_old's, stored by _compute_old_log_prob (STEER's entropy=rollout)
        extra["old_entropy"] = data.select("entropy").to_padded_tensor()["entropy"]
    token = EXTRA_INPUTS.set(extra)
    try:
        return ppo_loss(config, model_output, data, dp_group)
    finally:
        EXTRA_INPUTS.reset(token)


def make_worker_loss_fn(actor_config_omega: Any, knobs: dict[str, Any] | None = None):
    """The picklable ``loss_fn`` to send with ``actor_rollout_wg.set_loss_fn`` (same config verl builds).

    ``knobs`` (scheduled method knobs) replace the matching ``policy_loss.<knob>`` fields first.
    """
    require_verl(*PPO_LOSS_INTERNALS)
    from verl.utils.config import omega_conf_to_dataclass

    if knobs:
        actor_config_omega = OmegaConf.create(OmegaConf.to_container(actor_config_omega, resolve=True))
        with open_dict(actor_config_omega):
            for knob, value in knobs.items():
                actor_config_omega.policy_loss[knob] = value
    actor_config = omega_conf_to_dataclass(actor_config_omega)
    return partial(extra_inputs_ppo_loss, config=actor_config)


def step_hook_problems(trainer_base_source: str) -> list[str]:
    """What no longer holds in ``verl/trainer/ppo/v1/trainer_base.py`` for the per-step schedule hook."""
    tree = ast.parse(trainer_base_source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PPOTrainer"), None)
    if cls is None:
        return ["class PPOTrainer is gone"]
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    problems = []
    step = methods.get("step")
    if step is None or [a.arg for a in step.args.args][:3] != ["self", "metrics", "timing_raw"]:
        problems.append("PPOTrainer.step is no longer step(self, metrics, timing_raw)")
    fit = methods.get("fit")
    loops = [n for n in ast.walk(fit) if isinstance(n, ast.For | ast.While)] if fit is not None else []
    calls = [
        c
        for loop in loops
        for c in ast.walk(loop)
        if isinstance(c, ast.Call)
        and isinstance(c.func, ast.Attribute)
        and c.func.attr == "step"
        and isinstance(c.func.value, ast.Name)
        and c.func.value.id == "self"
        and c.args
        and isinstance(c.args[0], ast.Name)
        and c.args[0].id == "metrics"
    ]
    if not calls:
        problems.append("PPOTrainer.fit no longer calls self.step(metrics, ...) in its training loop")
    old = methods.get("_compute_old_log_prob")
    if old is None or not any(
        isinstance(c, ast.Constant) and c.value == ENTROPY_METRIC for c in ast.walk(old)
    ):
        problems.append(f"PPOTrainer._compute_old_log_prob no longer logs {ENTROPY_METRIC!r}")
    return problems


def require_step_hook() -> None:
    """Fail loudly unless the v1 fit loop still calls ``self.step(metrics, ...)`` and logs π_old's entropy."""
    require_verl(*STEP_HOOK_INTERNALS)
    import verl.trainer.ppo.v1.trainer_base as trainer_base

    problems = step_hook_problems(inspect.getsource(trainer_base))
    if problems:
        raise VerlCompatError(
            "steerbench's per-step knob schedule hook moved: "
            + "; ".join(problems)
            + "; steerbench/verl/shim.py needs porting"
        )


def scheduled_method(actor_config_omega: Any) -> str | None:
    """The steerbench method behind ``policy_loss.loss_mode`` if it has a per-step schedule, else None."""
    loss_mode = str(actor_config_omega.policy_loss.get("loss_mode", ""))
    method = loss_mode[len(PREFIX) :] if loss_mode.startswith(PREFIX) else None
    if method is None or method not in REGISTRY or REGISTRY[method].schedule is None:
        return None
    return method


class KnobSchedule:
    """Driver-side state of a method's per-step knob schedule (``MethodSpec.schedule``) on verl.

    verl numbers steps 1..T (``global_steps``); ``spec.schedule`` takes the 0-based index of the step that
    just finished, as the local trainer passes it. :meth:`after_step` maps one to the other, so feeding it
    (1, H_1), (2, H_2), … gives exactly the λ sequence of ``spec.schedule`` on (0, H_1), (1, H_2), ….
    ``weights[k]`` is the config in force during verl step k.
    """

    def __init__(self, method: str, knobs: dict[str, Any], total_steps: int):
        self.method = method
        self.spec = REGISTRY[method]
        if self.spec.schedule is None:
            raise ValueError(f"method {method!r} has no per-step schedule")
        self.total_steps = int(total_steps)
        self.cfg = self.spec.make_config(**knobs)
        self.history: dict[int, dict[str, Any]] = {1: self.scheduled_knobs()}

    @classmethod
    def from_actor_config(cls, method: str, actor_config_omega: Any, total_steps: int) -> KnobSchedule:
        from verl.utils.config import omega_conf_to_dataclass

        actor = omega_conf_to_dataclass(actor_config_omega)
        return cls(method, knobs_from_actor_config(method, actor, actor.loss_agg_mode), total_steps)

    @property
    def needs_entropy(self) -> bool:
        return getattr(self.cfg, "schedule", None) == "entropy_guided"

    def scheduled_knobs(self) -> dict[str, Any]:
        """The method's own (non-verl-native) knobs as they stand now."""
        return {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in NATIVE_KNOBS}

    def after_step(self, global_step: int, entropy: float | None) -> dict[str, Any]:
        """Knobs that changed for step ``global_step + 1``, after verl step ``global_step`` (1-based) with ``entropy``."""
        if entropy is None or not math.isfinite(float(entropy)):
            if self.needs_entropy:
                raise RuntimeError(
                    f"{self.method}'s schedule={self.cfg.schedule!r} needs the step's entropy, but verl logged no "
                    f"finite {ENTROPY_METRIC!r} at step {global_step} (rollout_correction.bypass_mode skips "
                    "_compute_old_log_prob); use another schedule or recompute old log-probs"
                )
            entropy = float("nan")
        before = self.scheduled_knobs()
        progress = {"step": int(global_step) - 1, "total_steps": self.total_steps, "entropy": float(entropy)}
        self.cfg = self.spec.schedule(self.cfg, progress)
        after = self.scheduled_knobs()
        self.history[int(global_step) + 1] = after
        return {k: v for k, v in after.items() if before.get(k) != v}

    def resume(self, global_step: int, path: Path | None) -> None:
        """Continue after a checkpoint at ``global_step``: restore the knobs of step ``global_step + 1``."""
        if global_step <= 0:
            return
        nxt = global_step + 1
        saved = {}
        if path is not None and Path(path).exists():
            saved = {
                int(k): v for k, v in json.loads(Path(path).read_text()).get("knobs_by_step", {}).items()
            }
        if nxt in saved:
            self.history = {k: v for k, v in saved.items() if k <= nxt}
            self.cfg = dataclasses.replace(self.cfg, **saved[nxt])
            return
        if self.needs_entropy:
            raise RuntimeError(
                f"resuming {self.method} at step {global_step}: its entropy-guided λ depends on every past step's "
                f"entropy and {path} does not record step {nxt}; cannot continue the schedule faithfully"
            )
        for k in range(1, nxt):  # step-only schedules (constant, stage, epoch) replay exactly
            self.after_step(k, None)

    def save(self, path: Path) -> None:
        atomic_write_json(
            Path(path),
            {
                "method": self.method,
                "total_steps": self.total_steps,
                "knobs_by_step": {str(k): v for k, v in sorted(self.history.items())},
            },
        )


def install_advantage_shim() -> None:
    """Wrap ``verl.trainer.ppo.v1.utils.compute_advantage`` so estimators can read ``old_log_probs``."""
    require_verl(*ADVANTAGE_INTERNALS)
    import verl.trainer.ppo.v1.utils as v1_utils

    original = v1_utils.compute_advantage
    if getattr(original, "_steerbench_shim", False):
        return

    def compute_advantage(data: Any, *args: Any, **kwargs: Any):
        old = data.batch.get("old_log_probs", None) if hasattr(data, "batch") else None
        token = ADVANTAGE_INPUTS.set({} if old is None else {"old_log_probs": old})
        try:
            return original(data, *args, **kwargs)
        finally:
            ADVANTAGE_INPUTS.reset(token)

    compute_advantage._steerbench_shim = True  # type: ignore[attr-defined]
    v1_utils.compute_advantage = compute_advantage


def make_shimmed_trainer(base: type) -> type:
    """A subclass of a verl v1 trainer that installs both shims right after ``init()`` built the workers."""

    class SteerbenchTrainer(base):  # type: ignore[misc,valid-type]
        def init(self) -> None:
            if omega_every(self.config):  # a bad K or a moved internal stops the run now, not at step K
                require_verl(*OMEGA_INTERNALS)
            super().init()
            install_advantage_shim()
            actor = self.config.actor_rollout_ref.actor
            self._steerbench_schedule = None
            method = scheduled_method(actor)
            knobs = None
            if method is not None:
                require_step_hook()
                schedule = KnobSchedule.from_actor_config(method, actor, self.total_training_steps)
                schedule.resume(int(self.global_steps), self._steerbench_schedule_path())
                self._steerbench_schedule = schedule
                knobs = schedule.scheduled_knobs()
            self.actor_rollout_wg.set_loss_fn(make_worker_loss_fn(actor, knobs))

        def _update_actor(self, batch: Any, metrics: dict):
            before_update = dict(batch.extra_info)  # the log-prob pass of in-training Ω reuses these settings
            batch = super()._update_actor(batch, metrics)
            omega_after_actor_update(
                self, batch, metrics, before_update
            )  # steerbench.verl.omega; off by default
            return batch

        def _steerbench_schedule_path(self) -> Path:
            return Path(str(self.config.trainer.default_local_dir)) / SCHEDULE_FILE

        def step(self, metrics: dict, timing_raw: dict):
            batch = super().step(metrics, timing_raw)
            schedule = self._steerbench_schedule
            if schedule is not None:
                changed = schedule.after_step(int(self.global_steps), metrics.get(ENTROPY_METRIC))
                if changed:
                    actor = self.config.actor_rollout_ref.actor
                    self.actor_rollout_wg.set_loss_fn(make_worker_loss_fn(actor, schedule.scheduled_knobs()))
                for knob, value in schedule.scheduled_knobs().items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        metrics[f"steerbench/next_{knob}"] = float(value)
                schedule.save(self._steerbench_schedule_path())
            return batch

    SteerbenchTrainer.__name__ = SteerbenchTrainer.__qualname__ = f"Steerbench{base.__name__}"
    return SteerbenchTrainer


def trainer_class_for(config: Any) -> type:
    """The shimmed trainer for ``config.trainer.v1.trainer_mode``, installed under that same name."""
    return install_shimmed_trainer(str(config.trainer.v1.trainer_mode))


def install_shimmed_trainer(mode: str) -> type:
    """Make ``get_trainer_cls(mode)`` return the shimmed subclass of verl's trainer for ``mode``.

    The mode name stays as it is: ``trainer_base.py`` branches on ``trainer.v1.trainer_mode == "sync"``
    (replay buffer, ``gen_batch_size``, TransferQueue state in checkpoints), so a renamed mode would turn
    the sync trainer into the async one. verl's ``register_trainer`` refuses to rebind a name, hence the
    registry entry is replaced directly; this runs only in the TaskRunner process, which exists for one run.
    """
    require_verl(*PPO_LOSS_INTERNALS, *ADVANTAGE_INTERNALS, *TRAINER_INTERNALS)
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, get_trainer_cls

    base = get_trainer_cls(mode)
    if getattr(base, "_steerbench_shim", False):
        return base
    shimmed = make_shimmed_trainer(base)
    shimmed._steerbench_shim = True  # type: ignore[attr-defined]
    TRAINER_REGISTRY[mode] = shimmed
    return shimmed


def task_runner_class():
    """A Ray actor class: verl's ``TaskRunnerV1`` that first swaps in the shimmed trainer."""
    require_verl("verl.trainer.main_ppo:TaskRunnerV1")
    import ray
    from verl.trainer.main_ppo import TaskRunnerV1

    base = TaskRunnerV1.__ray_metadata__.modified_class

    class SteerbenchTaskRunner(base):  # type: ignore[misc,valid-type]
        def run(self, config: Any):
            register_all()  # in this process too, as importing steerbench.verl_plugin does
            trainer_class_for(config)
            try:
                return super().run(config)
            finally:  # ray launcher: send the metrics back through the job's logs, also after a crash
                if os.environ.get(ENV_VAR) and os.environ.get("VERL_FILE_LOGGER_PATH"):
                    relay_file(os.environ["VERL_FILE_LOGGER_PATH"])

    return ray.remote(SteerbenchTaskRunner)
