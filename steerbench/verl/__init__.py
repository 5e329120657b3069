"""verl backend: registry plug-in (``steerbench.verl_plugin``), entropy shim, command composer, reward, log import.

Public entry points:
    build_verl_launch(cfg, run_dir) -> VerlLaunch  steerbench.verl.launch  (cfg from steerbench.config.compose)
    import_verl_logs(paths, run_dir) -> int        steerbench.verl.importer
    compute_score / compute_score_with_acc         steerbench.rewards
Nothing here imports verl at package import time; verl is needed only by the submodules that use it.
"""
