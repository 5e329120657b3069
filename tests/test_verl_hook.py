"""The Ray setup hook runs before Ray narrows CUDA_VISIBLE_DEVICES: it must import neither torch nor verl,
and the losses must still be registered in a real Ray worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_hook_imports_neither_torch_nor_verl_in_a_fresh_interpreter():
    code = (
        "import importlib, json, os, sys\n"
        "module, _, fn = 'steerbench.verl.hook.register'.rpartition('.')\n"  # as Ray resolves the hook
        "getattr(importlib.import_module(module), fn)()\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'verl': 'verl' in sys.modules,"
        " 'env': os.environ.get('VERL_USE_EXTERNAL_MODULES')}))\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "my_lab.plugin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"torch": False, "verl": False, "env": "my_lab.plugin,steerbench.verl_plugin"}


def test_launcher_uses_the_light_hook():
    from steerbench.verl.hook import HOOK
    from steerbench.verl.launch import PLUGIN_HOOK

    assert PLUGIN_HOOK == HOOK == "steerbench.verl.hook.register"


@pytest.mark.slow
def test_hook_gets_the_losses_registered_inside_a_real_ray_worker():
    pytest.importorskip("verl")
    import ray

    @ray.remote
    def registered() -> tuple[bool, list[str]]:
        torch_before_verl = "torch" in sys.modules
        from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

        return torch_before_verl, sorted(k for k in POLICY_LOSS_REGISTRY if k.startswith("steerbench_"))

    ray.init(
        num_cpus=1,
        include_dashboard=False,
        runtime_env={
            "worker_process_setup_hook": "steerbench.verl.hook.register",
            "env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none"},  # the entry point off: the hook alone suffices
        },
    )
    try:
        torch_before_verl, names = ray.get(registered.remote(), timeout=300)
    finally:
        ray.shutdown()
    from steerbench.methods import REGISTRY

    assert names == sorted(f"steerbench_{m}" for m in REGISTRY)
    assert not torch_before_verl  # nothing at worker start imported torch
