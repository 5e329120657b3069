"""Ω validation: how well first-order estimators predict the per-token entropy change of one real step.

Owns the estimators (``estimators``), the one-step measurement (``measure``), rollout batches and where
their prompts and rewards come from (``rollouts``, ``sources``, ``vllm_sampling``), the policies
``validate-omega`` measures (``policies``), agreement statistics (``stats``), the multi-batch validation and
its outputs (``validate``, figures in ``plots``) and the training-time hook both backends call
(``in_training``). It may import ``steerbench`` (errors, methods, local, rewards, runstore) and itself; it
must not import :mod:`steerbench.analysis.compare`.
"""
