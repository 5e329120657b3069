"""jvp stays finite where probabilities are exactly 0 and where rows are left-padded through a deep model.

Two ways a NaN used to reach the jvp estimator (and then a null Pearson in ``validate-omega``):
  - a −inf logit (a masked token) gives log π = −inf, and π·log π = 0·(−inf) in the entropy, its tangent
    and its gradient;
  - a left-padded row of a deep random Hugging Face model: the pad embedding row is zero-initialised, so a
    pad position's hidden state stays exactly 0, where RMSNorm's Jacobian is 1/√ε; the tangent there grows
    ~0.4·hidden× a layer, reaches inf past ~16 layers (float32 RMSNorm, whatever the model dtype), and the
    masked attention weight's 0·inf makes every later position NaN.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from omega_helpers import ToyLM, run_validate_omega, shared_parquet
from torch import nn

from steerbench.analysis.omega.measure import (
    RolloutBatch,
    entropy_stats,
    jvp_entropy_change,
    measure_entropy_change,
)

LIVE, UNDERFLOW, MASKED = 12, 18, 18  # logits: live, −300 (π = 0 exactly in float32), −inf (π = 0)


class SaturatedLM(nn.Module):
    """Causal running mean + MLP, then a fixed offset: most of the vocabulary has probability exactly 0."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        vocab = LIVE + UNDERFLOW + MASKED
        self.emb = nn.Embedding(vocab, d)
        self.mix = nn.Linear(d, d)
        self.out = nn.Linear(d, vocab)
        offset = torch.cat(
            [torch.zeros(LIVE), torch.full((UNDERFLOW,), -300.0), torch.full((MASKED,), -torch.inf)]
        )
        self.register_buffer("offset", offset)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.emb(tokens)
        x = torch.cumsum(x, 1) / torch.arange(1, tokens.shape[1] + 1, dtype=x.dtype)[None, :, None]
        return 3.0 * self.out(torch.tanh(self.mix(x))) + self.offset


def reference_entropy(logits: torch.Tensor) -> torch.Tensor:
    """−Σ π log π in float64 with torch.special.entr (entr(0) = 0), independent of omega's formula."""
    return torch.special.entr(torch.softmax(logits.double(), -1)).sum(-1)


def saturated_setup(dtype: torch.dtype) -> tuple[SaturatedLM, torch.Tensor, int, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = SaturatedLM().to(dtype)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, LIVE, (4, 9), generator=g)
    delta = {n: torch.randn(p.shape, generator=g, dtype=dtype) for n, p in model.named_parameters()}
    return model, tokens, 3, delta


def test_entropy_stats_of_a_saturated_softmax_are_finite_and_exact() -> None:
    model, tokens, P, _ = saturated_setup(torch.float32)
    with torch.no_grad():
        logits = model(tokens[:, :-1])[:, P - 1 :]
    assert (torch.softmax(logits, -1) == 0).float().mean() > 0.7  # most probabilities exactly 0
    lp, h, e = entropy_stats(logits, tokens[:, P:], 1.0, torch.float32)
    assert torch.isfinite(lp).all() and torch.isfinite(h).all() and torch.isfinite(e).all()
    torch.testing.assert_close(h.double(), reference_entropy(logits), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["forward", "double_backward"])
def test_jvp_of_a_saturated_policy_is_finite_and_matches_finite_differences(
    dtype: torch.dtype, mode: str
) -> None:
    model, tokens, P, delta = saturated_setup(dtype)
    jvp = jvp_entropy_change(model, tokens, P, delta, 1.0, dtype, mode=mode)
    assert torch.isfinite(jvp).all()
    ref = copy.deepcopy(model).double()  # central differences of the float64 reference entropy
    base = {n: p.detach().clone() for n, p in ref.named_parameters()}
    eps, hs = 1e-6, []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for n, p in ref.named_parameters():
                p.copy_(base[n] + sign * eps * delta[n].double())
            hs.append(reference_entropy(ref(tokens[:, :-1])[:, P - 1 :]))
    fd = (hs[0] - hs[1]) / (2 * eps)
    assert fd.abs().max() > 1e-2  # a real, non-trivial directional derivative
    tol = 1e-6 if dtype == torch.float64 else 2e-4
    torch.testing.assert_close(jvp.double(), fd, rtol=tol, atol=tol)


def test_measure_entropy_change_of_a_saturated_policy_is_finite() -> None:
    model, tokens, P, _ = saturated_setup(torch.float32)
    T = tokens.shape[1] - P
    batch = RolloutBatch(
        tokens=tokens,
        prompt_len=P,
        response_mask=torch.ones(4, T),
        advantages=torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None].expand(4, T).clone(),
        group_index=torch.tensor([0, 0, 1, 1]),
    )
    res = measure_entropy_change(model, batch, "grpo", "sgd", 1e-3)
    assert torch.isfinite(res.measured).all() and torch.isfinite(res.entropy).all()
    for name, pred in res.predicted.items():
        assert torch.isfinite(pred).all(), name


# -- a deep random Qwen2 with left-padded rows (the failure measured on an H200 at 24 layers) --

DEEP = {"layers": 24, "hidden": 192, "heads": 4, "kv_heads": 2}  # tangent growth ~77× a layer: inf by ~20


@pytest.fixture(scope="module")
def math500() -> Path:
    return shared_parquet("math500.parquet")


@pytest.fixture(scope="module")
def deep_qwen(tmp_path_factory: pytest.TempPathFactory, math500: Path) -> Path:
    pytest.importorskip("transformers")
    import pandas as pd

    from steerbench.local.tiny_hf import save_tiny_qwen2

    texts = [m["content"] for p in pd.read_parquet(math500).prompt[:300] for m in p]
    return save_tiny_qwen2(tmp_path_factory.mktemp("deep_qwen2"), texts, **DEEP)  # type: ignore[arg-type]


def test_jvp_of_left_padded_rows_of_a_deep_qwen2_equals_the_unpadded_rows(deep_qwen: Path) -> None:
    from steerbench.local.hf import load_hf_policy
    from steerbench.tasks.chat import load_hf_tokenizer

    policy = load_hf_policy(deep_qwen, torch.float32).eval()
    tokenizer = load_hf_tokenizer(deep_qwen)
    assert tokenizer is not None
    pad = int(tokenizer.pad_token_id)
    policy.pad_id = pad
    assert policy.lm.model.embed_tokens.weight[pad].abs().max() == 0  # HF zero-initialises the pad row
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(3, 250, (3, 24), generator=g)
    P, cuts = 16, (0, 5, 11)  # row i keeps the last 24 − cuts[i] tokens, left-padded back to 24
    padded = torch.stack([torch.cat([torch.full((c,), pad), r[c:]]) for r, c in zip(rows, cuts, strict=True)])
    delta = {n: 1e-3 * torch.randn(p.shape, generator=g) for n, p in policy.named_parameters()}
    jvp = jvp_entropy_change(policy, padded, P, delta, 1.0, torch.float32)
    assert torch.isfinite(jvp).all()
    policy.pad_id = None  # unpadded rows need no padding mask: the plain causal forward
    for i, c in enumerate(cuts):
        alone = jvp_entropy_change(policy, rows[i : i + 1, c:], P - c, delta, 1.0, torch.float32)
        torch.testing.assert_close(jvp[i : i + 1], alone, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_validate_omega_on_a_24_layer_qwen2_gives_a_finite_jvp_pearson(
    deep_qwen: Path, math500: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--model", str(deep_qwen), "--data", str(math500), "--device", "cpu", "--rewards", "random",
        "--sampler", "generate", "--batches", "2", "--prompts", "2", "--group-size", "3",
        "--max-new-tokens", "4", "--max-prompt-tokens", "40", "--n-boot", "5",
        "--estimators", "jvp", "--json",
    ]  # fmt: skip
    assert run_validate_omega(argv, monkeypatch) == 0
    report = json.loads(capsys.readouterr().out)
    pearson = report["estimators"]["jvp"]["pearson"]
    assert pearson is not None and pearson >= 0.95, pearson


# -- a non-finite prediction is an error, never a null statistic --


def test_a_non_finite_prediction_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import steerbench.analysis.omega.measure as omega
    from steerbench.errors import RunFailed

    torch.manual_seed(0)
    model, P = ToyLM(), 3  # finite logits: only the injected NaN can be non-finite
    tokens = torch.randint(0, 17, (4, 9), generator=torch.Generator().manual_seed(1))
    T = tokens.shape[1] - P
    mask = torch.ones(4, T)
    mask[3, -2:] = 0
    batch = RolloutBatch(
        tokens=tokens,
        prompt_len=P,
        response_mask=mask,
        advantages=torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * mask,
    )

    def nan_at(row: int, col: int) -> object:
        def fake(*args: object, **kwargs: object) -> torch.Tensor:
            out = torch.zeros(4, T, dtype=torch.float64)
            out[row, col] = torch.nan
            return out

        return fake

    monkeypatch.setattr(omega, "jvp_entropy_change", nan_at(3, T - 1))  # a padding position: ignored
    res = measure_entropy_change(model, batch, "grpo", "sgd", 1e-3, estimators=("jvp",), dtype=torch.float64)
    assert torch.isfinite(res.predicted["jvp"][mask.bool()]).all()
    monkeypatch.setattr(omega, "jvp_entropy_change", nan_at(1, 2))
    with pytest.raises(RunFailed, match=r"estimator 'jvp' predicted a non-finite ΔH .* 1 of 22 .*row 1"):
        measure_entropy_change(model, batch, "grpo", "sgd", 1e-3, estimators=("jvp",), dtype=torch.float64)
