"""The ``steerbench compare`` pipeline: from run stores to the comparison report.

Owns finding and loading runs (``runs``), per-run and per-cell statistics (``summary``), seed-level
inference (``inference``), each method against its matched grpo control (``matching``), positive controls
(``controls``), dose–response frontiers (``frontier``), the findings in plain sentences (``findings``), the
report and its rendering (``report``, ``render``) and its figures (``plots``; ``omega_grid`` tabulates and
plots the in-training Ω columns that runs logged). It may import ``steerbench`` (errors, runstore, config,
methods) and itself; it must not import :mod:`steerbench.analysis.omega`.
"""
