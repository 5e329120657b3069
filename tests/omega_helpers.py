"""Shared by the Ω tests: the CLI runner, a float64 toy LM, and the shared verl parquet files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

# every estimator's entry in validate-omega's --json report (the schema the issue keeps stable)
STABLE_ESTIMATOR_KEYS = {
    "pearson",
    "spearman",
    "sign_agreement",
    "slope",
    "r2",
    "ci",
    "by_quadrant",
    "levels",
}
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def shared_parquet(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared datasets are not mounted beside this checkout")
    return path


def run_validate_omega(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``steerbench validate-omega ARGV`` in-process; its exit code."""
    from steerbench.cli import main

    monkeypatch.setattr(sys, "argv", ["steerbench", "validate-omega", *argv])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


class ToyLM(nn.Module):
    """float64 end to end (TinyPolicy returns float32 logits): causal running-mean mixing + attention-free MLP."""

    def __init__(self, vocab: int = 17, d: int = 12) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d, dtype=torch.float64)
        self.mix = nn.Linear(d, d, dtype=torch.float64)
        self.out = nn.Linear(d, vocab, dtype=torch.float64)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.emb(tokens)
        x = torch.cumsum(x, 1) / torch.arange(1, tokens.shape[1] + 1, dtype=x.dtype)[None, :, None]
        return self.out(torch.tanh(self.mix(x)))
