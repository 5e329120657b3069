"""Analysis, installed as ``steerbench.analysis``: two pipelines, each a subpackage.

* :mod:`steerbench.analysis.compare`  ``steerbench compare``: load run stores, per-run and per-cell statistics,
  each method against its matched grpo control, positive controls, dose–response frontiers, the report
  (Markdown + HTML) and its figures.
* :mod:`steerbench.analysis.omega`    Ω validation (``validate-omega`` and the training-time hook): first-order
  ΔH estimators, the one-step measurement, rollouts and their sources, agreement statistics, figures.

The two never import each other; nothing is shared between them.

Public API (the Ω side):
    omega.estimators.ESTIMATORS              name → estimator (predicted ΔH per token, positive = entropy rises)
    omega.measure.measure_entropy_change(...)  one real optimiser step, measured vs predicted ΔH per token
    omega.validate.validate(...)             several batches (+ an lr sweep) → per-token table + statistics
    omega.stats.agreement_stats(...)         Pearson, Spearman, sign agreement, slope, R², residuals, bootstrap CIs
"""
