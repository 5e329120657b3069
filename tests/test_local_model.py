"""TinyPolicy: shapes, determinism, KV-cache decoding equals a full forward."""

from __future__ import annotations

import pytest
import torch

from steerbench.errors import UsageError
from steerbench.local.model import ModelConfig, TinyPolicy, apply_rope, rope_tables


def make_model(seed: int = 0, **kw: int) -> TinyPolicy:
    torch.manual_seed(seed)
    return TinyPolicy(ModelConfig(vocab_size=32, **kw)).eval()


def test_forward_returns_float32_logits_of_shape_batch_len_vocab() -> None:
    logits = make_model()(torch.randint(0, 32, (3, 11)))
    assert logits.shape == (3, 11, 32) and logits.dtype == torch.float32


def test_forward_is_deterministic_on_cpu_in_train_mode_too() -> None:
    """Training calls the model in train mode: with dropout 0 it must be a pure function of its input,
    and each row's logits must not depend on the other rows of the batch."""
    model = make_model(1).train()
    tokens = torch.randint(0, 32, (4, 16))
    first = model(tokens)
    assert torch.equal(first, model(tokens))
    assert torch.equal(first, model.eval()(tokens))
    torch.testing.assert_close(model(tokens[1:2]), first[1:2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("prefill", [1, 5, 12])
def test_kv_cache_incremental_decoding_matches_full_forward(prefill: int) -> None:
    model = make_model(n_layer=3)
    tokens = torch.randint(0, 32, (3, 24))
    full = model(tokens)
    cache = model.new_kv_cache(3)
    pieces = [model(tokens[:, :prefill], kv_cache=cache, start_pos=0)]
    # a multi-token chunk after the prefill exercises the general (start_pos > 0, L > 1) mask
    pieces.append(model(tokens[:, prefill : prefill + 3], kv_cache=cache, start_pos=prefill))
    for pos in range(prefill + 3, 24):
        pieces.append(model(tokens[:, pos : pos + 1], kv_cache=cache, start_pos=pos))
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=0)


def test_causal_prefix_logits_ignore_later_tokens() -> None:
    model = make_model()
    a = torch.randint(0, 32, (2, 12))
    b = a.clone()
    b[:, 8:] = (b[:, 8:] + 1) % 32
    torch.testing.assert_close(model(a)[:, :8], model(b)[:, :8], atol=1e-6, rtol=0)


def test_sequence_longer_than_max_seq_len_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="max_seq_len"):
        make_model(max_seq_len=8)(torch.zeros(1, 9, dtype=torch.long))


def test_head_size_must_divide_d_model() -> None:
    with pytest.raises(UsageError, match="divisible"):
        ModelConfig(vocab_size=8, d_model=100, n_head=3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rope_rotates_each_even_odd_pair_bit_for_bit_like_the_real_formula(dtype: torch.dtype) -> None:
    """The complex-multiply RoPE equals the textbook real form (x₁cos − x₂sin, x₁sin + x₂cos) exactly,
    so switching forms changed no run's numbers; and a rotation keeps each pair's norm."""
    cfg = ModelConfig(vocab_size=8, max_seq_len=12)
    cos, sin = (table.to(dtype) for table in rope_tables(cfg))
    x = torch.randn(3, 4, 12, 32, dtype=dtype, generator=torch.Generator().manual_seed(0))
    x1, x2 = x[..., 0::2], x[..., 1::2]
    textbook = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    rotated = apply_rope(x, torch.complex(cos, sin))
    assert rotated.dtype == dtype and torch.equal(rotated, textbook)
    pair_norm = lambda t: t.unflatten(-1, (-1, 2)).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pair_norm(rotated), pair_norm(x))
    # position 0 is the identity rotation
    assert torch.equal(rotated[:, :, 0], x[:, :, 0])
