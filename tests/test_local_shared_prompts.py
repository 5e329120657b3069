"""Shared prompts: the sampler's prefill runs each distinct prompt once (bit for bit the per-row prefill),
and `trainer.share_prompts` (on by default) scores each distinct prompt once (equal to float rounding; its
trainer step and reproducibility are tested with the other default speed-up in test_local_trainer.py)."""

from __future__ import annotations

import pytest
import torch

from steerbench.local.model import KVCache, ModelConfig, TinyPolicy
from steerbench.local.sampler import response_logits, response_logprobs, sample

V, EOS = 16, 2


def tiny_model() -> TinyPolicy:
    torch.manual_seed(0)
    return TinyPolicy(ModelConfig(vocab_size=V, max_seq_len=48)).eval()


def grouped_prompts(groups: int = 5, n: int = 4, length: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of `groups` prompts repeated n times, rows shuffled as a minibatch is: (prompts, shuffle)."""
    g = torch.Generator().manual_seed(1)
    distinct = torch.randint(3, V, (groups, length), generator=g)
    order = torch.randperm(groups * n, generator=g)
    return distinct.repeat_interleave(n, 0)[order], order


def qwen2_policy(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A tiny random Qwen2 (grouped-query attention, q/k/v biases) on the native Llama-family forward."""
    transformers = pytest.importorskip("transformers")
    from steerbench.local.hf import HFPolicy

    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    policy = HFPolicy(transformers.AutoModelForCausalLM.from_config(config).to(dtype).eval())
    assert policy.native
    return policy


class PerRowCache:
    """A cache without `take_rows`: the sampler then prefills every row, as it did before sharing."""

    def __init__(self, cache: KVCache) -> None:
        self.cache = cache

    def write(self, *args):  # type: ignore[no-untyped-def]
        return self.cache.write(*args)


class PerRowPrefill(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> PerRowCache:
        return PerRowCache(self.model.new_kv_cache(batch_size, max_len))

    def forward(self, tokens, kv_cache=None, start_pos=0):  # type: ignore[no-untyped-def]
        return self.model(tokens, kv_cache, start_pos)


@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """One thread, as grid cells run: with several, BLAS may split a 5-row and a 20-row prefill
    differently, and the two then agree to rounding only (seen on the loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("make_model", [tiny_model, qwen2_policy], ids=["tiny", "native_qwen2"])
@pytest.mark.usefixtures("one_thread")
def test_rollouts_of_repeated_prompts_equal_per_row_prefill_bit_for_bit(make_model) -> None:
    model = make_model()  # TinyPolicy's KVCache, and the native Llama forward's GrowingKVCache
    prompts, _ = grouped_prompts()
    shared = sample(model, prompts, 12, 1.0, EOS, torch.Generator().manual_seed(5))
    per_row = sample(PerRowPrefill(model), prompts, 12, 1.0, EOS, torch.Generator().manual_seed(5))
    for name in ("tokens", "response_mask", "old_log_prob", "entropy"):
        assert torch.equal(getattr(shared, name), getattr(per_row, name)), name
    assert shared.tokens.shape[1] > prompts.shape[1] + 1


def test_take_rows_copies_each_rows_prefix() -> None:
    model = tiny_model()
    prompts, _ = grouped_prompts(groups=3, n=1)
    cache = model.new_kv_cache(3)
    model(prompts, kv_cache=cache)
    rows = torch.tensor([2, 0, 2, 1])
    taken = cache.take_rows(rows, prompts.shape[1])
    assert taken.k.shape[1] == 4
    assert torch.equal(taken.k[:, :, :, :7], cache.k[:, rows, :, :7])
    assert torch.equal(taken.v[:, :, :, :7], cache.v[:, rows, :, :7])


@pytest.mark.parametrize("response_len", [1, 6])
def test_shared_prompt_scoring_equals_per_row_scoring_and_its_gradients(response_len: int) -> None:
    model = tiny_model().train()
    prompts, _ = grouped_prompts()
    tokens = torch.cat([prompts, torch.randint(3, V, (len(prompts), response_len))], 1)
    results = []
    for share in (False, True):
        model.zero_grad()
        log_prob, entropy = response_logprobs(model, tokens, 7, 0.8, share)
        (log_prob.sum() + (entropy * torch.linspace(0, 1, response_len)).sum()).backward()
        results.append((log_prob, entropy, [p.grad.clone() for p in model.parameters()]))
    (lp_a, h_a, grads_a), (lp_b, h_b, grads_b) = results
    torch.testing.assert_close(lp_b, lp_a, atol=2e-6, rtol=0)
    torch.testing.assert_close(h_b, h_a, atol=2e-6, rtol=0)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)
    assert all(g.abs().sum() > 0 for g in grads_a)


def test_shared_prompt_logits_equal_per_row_logits_for_a_float64_llama() -> None:
    policy = qwen2_policy(torch.float64)
    prompts, _ = grouped_prompts()
    tokens = torch.cat([prompts, torch.randint(3, V, (len(prompts), 5))], 1)
    params = list(policy.parameters())
    weights = torch.randn(len(prompts), 5, V, dtype=torch.float64)
    per_row, shared = (response_logits(policy, tokens, 7, share) for share in (False, True))
    torch.testing.assert_close(shared, per_row, atol=1e-12, rtol=0)
    grads_a = torch.autograd.grad((per_row * weights).sum(), params)
    grads_b = torch.autograd.grad((shared * weights).sum(), params)
    for a, b in zip(
        grads_a, grads_b, strict=True
    ):  # RMSNorm runs in float32 (as transformers'): its rounding
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    assert all(g.abs().sum() > 0 for g in grads_a)


def test_a_model_on_transformers_own_forward_scores_every_row_when_asked_to_share() -> None:
    transformers = pytest.importorskip("transformers")
    from steerbench.local.hf import HFPolicy

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=2, n_positions=32)
    policy = HFPolicy(transformers.AutoModelForCausalLM.from_config(config).eval())
    assert not policy.native
    prompts, _ = grouped_prompts()
    tokens = torch.cat([prompts, torch.randint(3, V, (len(prompts), 4))], 1)
    with torch.no_grad():
        shared, per_row = (response_logits(policy, tokens, 7, share) for share in (True, False))
    assert torch.equal(shared, per_row)
