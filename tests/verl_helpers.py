"""Moved to steerbench.verl.tiny."""

from steerbench.verl.tiny import verl_cfg, verl_config, worker_actor_config  # noqa: F401
