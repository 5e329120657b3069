"""Ω validation: first-order entropy-change estimators, the one-step measurement, statistics, plots.

Public API:
    estimators.ESTIMATORS              name → estimator (predicted ΔH per token, positive = entropy rises)
    omega.measure_entropy_change(...)  one real optimiser step, measured vs predicted ΔH per token
    omega.validate(...)                several batches (+ an lr sweep) → per-token table + statistics
    stats.agreement_stats(...)         Pearson, Spearman, sign agreement, slope, R², residuals, bootstrap CIs
"""
