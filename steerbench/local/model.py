"""The embedded backend's policy: a nanoGPT-sized decoder-only transformer in plain torch.

Pre-norm blocks (LayerNorm → causal self-attention with rotary position embeddings → residual,
LayerNorm → GELU MLP of width 4·d_model → residual), tied input/output embeddings, float32 logits.

Incremental decoding: `forward(tokens, kv_cache, start_pos)` hands the keys/values of `tokens` (positions
`[start_pos, start_pos + L)`) to the cache's `write(layer, k, v, start)` and attends over what it returns,
`[0, start_pos + L)`: a preallocated `KVCache` when sampling, so a prefill followed by one-token steps gives
the same logits as one full forward (to float rounding), or `SharedPrefix` when scoring (sampler.py).
Everything is deterministic on CPU: no dropout unless configured, no non-deterministic kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from steerbench.errors import UsageError


@dataclass
class ModelConfig:
    vocab_size: int  # number of token ids (the task tokenizer's vocab_size)
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads; d_model must be divisible by it
    d_model: int = 128  # residual stream width
    max_seq_len: int = 64  # longest prompt + response the model (and its KV cache) accepts
    dropout: float = 0.0  # dropout on attention output and MLP output (0 keeps training deterministic)
    rope_base: float = 10000.0  # RoPE frequency base θ

    def __post_init__(self) -> None:
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise UsageError(
                f"d_model={self.d_model} must be divisible by n_head={self.n_head} with an even head size "
                "(RoPE rotates pairs of dimensions); e.g. d_model=128, n_head=4"
            )
        if min(self.vocab_size, self.n_layer, self.n_head, self.max_seq_len) < 1:
            raise UsageError(f"ModelConfig sizes must be ≥ 1, got {self}")


@dataclass
class KVCache:
    """Per-layer key/value buffers, shape (n_layer, B, n_head, max_seq_len, head_dim) each."""

    k: torch.Tensor
    v: torch.Tensor

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k/v (B, H, L, D) at positions [start, start + L); return the keys/values of [0, start + L)."""
        end = start + k.shape[2]
        cache_k, cache_v = self.k[layer], self.v[layer]
        cache_k[:, :, start:end] = k
        cache_v[:, :, start:end] = v
        return cache_k[:, :, :end], cache_v[:, :, :end]

    def take_rows(self, rows: torch.Tensor, length: int) -> KVCache:
        """A cache of len(rows) sequences whose first `length` positions are those of `rows` here."""
        shape = (self.k.shape[0], len(rows), *self.k.shape[2:])
        k, v = self.k.new_empty(shape), self.v.new_empty(shape)
        k[:, :, :, :length], v[:, :, :, :length] = self.k[:, rows, :, :length], self.v[:, rows, :, :length]
        return KVCache(k, v)


def rope_tables(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (max_seq_len, head_dim/2): angle(pos, i) = pos · θ^(−2i/head_dim)."""
    head_dim = cfg.d_model // cfg.n_head
    inv_freq = cfg.rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(cfg.max_seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (..., D) by its position's angle: the pair as a complex number
    times e^{iθ} = cos θ + i sin θ, i.e. (x₁cos − x₂sin, x₁sin + x₂cos), bit for bit the real form's
    products and sums in one kernel. `rotation` is complex, broadcastable to (..., D/2)."""
    return torch.view_as_real(torch.view_as_complex(x.unflatten(-1, (-1, 2))) * rotation).flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor,
        cache: Any,
        layer: int,
        start_pos: int,
    ) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_head, self.head_dim)
        q, k = apply_rope(qkv[:, :, :2], rotation).permute(2, 0, 3, 1, 4)  # q and k in one rotation
        v = qkv[:, :, 2].transpose(1, 2)
        end = start_pos + L
        if cache is not None:
            k, v = cache.write(layer, k, v, start_pos)
        # query i sits at absolute position start_pos + i and may see keys at positions ≤ start_pos + i:
        # a plain causal mask from position 0, none for a single query, an explicit one otherwise
        if start_pos == 0 or L == 1:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=L > 1)
        else:
            mask = (
                torch.arange(end, device=x.device) <= torch.arange(start_pos, end, device=x.device)[:, None]
            )
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.dropout(self.proj(y.transpose(1, 2).reshape(B, L, D)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model),
            nn.GELU(),
            nn.Linear(4 * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, rotation, cache, layer, start_pos):  # type: ignore[no-untyped-def]
        x = x + self.attn(self.ln1(x), rotation, cache, layer, start_pos)
        return x + self.mlp(self.ln2(x))


class TinyPolicy(nn.Module):
    """Decoder-only LM: `forward(tokens (B, L), kv_cache=None, start_pos=0) -> logits (B, L, V)` float32."""

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2 scaling: residual projections shrink with depth so the stream's variance stays O(1)
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """Uninitialised buffers for `batch_size` sequences of up to `max_len` (at most `max_seq_len`)
        tokens. Attention reads only positions already written, so zero-filling them would be wasted work,
        and buffers no longer than the sequences spare the memory system pages it never reads."""
        cfg, p = self.cfg, self.embed.weight
        length = cfg.max_seq_len if max_len is None else min(max_len, cfg.max_seq_len)
        shape = (cfg.n_layer, batch_size, cfg.n_head, length, cfg.d_model // cfg.n_head)
        return KVCache(p.new_empty(shape), p.new_empty(shape))

    def forward(self, tokens: torch.Tensor, kv_cache: Any = None, start_pos: int = 0) -> torch.Tensor:
        L = tokens.shape[1]
        if start_pos + L > self.cfg.max_seq_len:
            raise UsageError(
                f"sequence of {start_pos + L} tokens exceeds max_seq_len={self.cfg.max_seq_len}; "
                "raise model.max_seq_len or shorten the task's prompt/response"
            )
        # (L, 1, 1, D/2): broadcast over (B, L, q|k, head, D/2); built from the real tables each call so a
        # float64 copy of the model rotates in complex128
        span = slice(start_pos, start_pos + L)
        rotation = torch.complex(self.rope_cos[span], self.rope_sin[span])[:, None, None]
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            x = block(x, rotation, kv_cache, i, start_pos)
        return F.linear(self.ln_f(x), self.embed.weight).float()
