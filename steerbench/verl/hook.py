"""Ray ``worker_process_setup_hook`` for verl runs: arrange for the plug-in to load, import nothing heavy.

Ray runs the hook when a worker process starts, *before* it narrows ``CUDA_VISIBLE_DEVICES`` for the
actor placed in it. Importing verl there would call ``torch.cuda.is_available()`` (``verl/utils/device.py``)
and freeze torch's view of every GPU on the node, so each rank would pick device 0. The hook therefore
only appends ``steerbench.verl_plugin`` to ``VERL_USE_EXTERNAL_MODULES``: when the actor's code later
imports verl (with the devices already narrowed), verl imports the plug-in, which registers the losses.
The ``verl.plugins`` entry point and the ``policy_loss._target_`` import register them as well.
"""

from __future__ import annotations

import os

PLUGIN_MODULE = "steerbench.verl_plugin"
HOOK = "steerbench.verl.hook.register"
ENV_VAR = "VERL_USE_EXTERNAL_MODULES"


def register() -> None:
    """Add the plug-in to ``VERL_USE_EXTERNAL_MODULES`` (kept: any modules the user listed there)."""
    modules = [m for m in os.environ.get(ENV_VAR, "").split(",") if m]
    if PLUGIN_MODULE not in modules:
        os.environ[ENV_VAR] = ",".join([*modules, PLUGIN_MODULE])
