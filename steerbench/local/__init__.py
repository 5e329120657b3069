"""Embedded backend: tiny policy model, tasks + verifiers, KV-cache sampler, warm start, GRPO trainer."""
