"""A native forward for Llama-family Hugging Face models (Llama, Qwen2): the model's own weights, called
without transformers' per-call machinery (mask builders, cache classes, output dataclasses).

    n(x)   = w · x / sqrt(mean(x²) + ε)                        RMSNorm, computed in float32
    h      = x + o(SDPA(RoPE(q(n₁(x))), RoPE(k(n₁(x))), v(n₁(x))))   causal; GQA when H_kv < H
    x'     = h + down(silu(gate(n₂(h))) · up(n₂(h)))
    logits = lm_head(n_f(x_L))

RoPE is transformers' rotate-half form with the model's own ``inv_freq`` and attention scaling, so the
logits agree with ``lm(input_ids=...)`` to float rounding. Architectures outside `native_supported`
(other rope types, sliding windows, MLP biases, other families) keep transformers' forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

NATIVE_FAMILIES = ("llama", "qwen2")


def native_supported(config: Any) -> bool:
    rope = getattr(config, "rope_parameters", None) or {}
    return (
        config.model_type in NATIVE_FAMILIES
        and config.hidden_act == "silu"
        and rope.get("rope_type", "default") == "default"
        and not getattr(config, "use_sliding_window", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "pretraining_tp", 1) == 1
    )


class GrowingKVCache:
    """Per-layer key/value buffers (B, H_kv, capacity, D): allocated on the first write (at least
    `capacity` positions), doubled when full (a decode step writes in place instead of concatenating, as
    transformers' DynamicCache does)."""

    def __init__(self, layers: int, capacity: int = 64) -> None:
        self.capacity = capacity
        self.k: list[torch.Tensor | None] = [None] * layers
        self.v: list[torch.Tensor | None] = [None] * layers
        self.pad_lead: torch.Tensor | None = None  # (B,) leading pads of left-padded rows (HFPolicy sets it)

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.shape[2]
        old_k, old_v = self.k[layer], self.v[layer]
        if old_k is None or old_v is None or old_k.shape[2] < end:
            capacity = max(end, self.capacity, 2 * (0 if old_k is None else old_k.shape[2]))
            new_k = k.new_empty(*k.shape[:2], capacity, k.shape[3])
            new_v = v.new_empty(*v.shape[:2], capacity, v.shape[3])
            if old_k is not None and old_v is not None:
                new_k[:, :, :start], new_v[:, :, :start] = old_k[:, :, :start], old_v[:, :, :start]
            self.k[layer], self.v[layer] = new_k, new_v
            old_k, old_v = new_k, new_v
        old_k[:, :, start:end], old_v[:, :, start:end] = k, v
        return old_k[:, :, :end], old_v[:, :, :end]

    def take_rows(self, rows: torch.Tensor, length: int) -> GrowingKVCache:
        """A cache of len(rows) sequences whose first `length` positions are those of `rows` here."""

        def take(buffer: torch.Tensor | None) -> torch.Tensor | None:
            if buffer is None:
                return None
            out = buffer.new_empty(len(rows), *buffer.shape[1:])
            out[:, :, :length] = buffer[rows, :, :length]
            return out

        taken = GrowingKVCache(len(self.k), self.capacity)
        taken.k, taken.v = [take(k) for k in self.k], [take(v) for v in self.v]
        taken.pad_lead = None if self.pad_lead is None else self.pad_lead[rows]
        return taken


def rms_norm(norm: Any, x: torch.Tensor) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def rotary_cos_sin(
    rotary: Any, positions: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin (B, 1, L, D) for positions (B, L), in float32 then cast, as transformers computes
    them; the sin's first half is negated so that `rotate` needs no negation of x (see there)."""
    freqs = positions[..., None].float() * rotary.inv_freq.float()
    scale = rotary.attention_scaling
    cos, sin = (freqs.cos() * scale).to(dtype), (freqs.sin() * scale).to(dtype)
    return torch.cat((cos, cos), dim=-1)[:, None], torch.cat((-sin, sin), dim=-1)[:, None]


def rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x·cos + rotate_half(x)·sin with rotate_half(x) = (−x₂, x₁): bit for bit, as (−a)·b = a·(−b) exactly,
    with one fewer pass over x (`roll` gives (x₂, x₁); the sign sits in `signed_sin`)."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def attention_mask(
    start_pos: int, length: int, key_valid: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean (B|1, 1, L, start+L) mask, or None where SDPA's own causal flag or no mask is exact.

    `key_valid` (B, start+L) marks real keys. Query i (absolute position start_pos + i) sees keys ≤ its
    position that are real tokens; a padding
    query also sees itself, so no row is fully masked (its output is never read)."""
    if key_valid is None and (start_pos == 0 or length == 1):
        return None
    end = start_pos + length
    query_pos = torch.arange(start_pos, end, device=device)[:, None]
    keys = torch.arange(end, device=device)
    causal = keys <= query_pos
    if key_valid is None:
        return causal
    return (causal & key_valid[:, None, None, :]) | (keys == query_pos)


def llama_forward(
    lm: Any,
    tokens: torch.Tensor,
    cache: GrowingKVCache | None = None,
    start_pos: int = 0,
    pad_lead: torch.Tensor | None = None,
    first_logit: int = 0,
) -> torch.Tensor:
    """Logits (B, L − first_logit, V) of a Llama-family `lm` for tokens at positions [start_pos, start_pos + L),
    from the `first_logit`-th on.

    `pad_lead` (B,) counts each LEFT-padded row's leading pads (at positions 0..lead−1, in the cache or in
    `tokens`): positions then count from each row's first real token, and the pads are masked out of
    attention."""
    body = lm.model
    B, L = tokens.shape
    positions = torch.arange(start_pos, start_pos + L, device=tokens.device)[None]
    key_valid = None
    if pad_lead is not None:
        positions = (positions - pad_lead[:, None]).clamp_min(0)
        key_valid = torch.arange(start_pos + L, device=tokens.device) >= pad_lead[:, None]
    x = body.embed_tokens(tokens)
    cos, sin = rotary_cos_sin(body.rotary_emb, positions, x.dtype)
    mask = attention_mask(start_pos, L, key_valid, tokens.device)
    causal = mask is None and L > 1
    for i, layer in enumerate(body.layers):
        attn = layer.self_attn
        h = rms_norm(layer.input_layernorm, x)
        q = rotate(attn.q_proj(h).view(B, L, -1, attn.head_dim).transpose(1, 2), cos, sin)
        k = rotate(attn.k_proj(h).view(B, L, -1, attn.head_dim).transpose(1, 2), cos, sin)
        v = attn.v_proj(h).view(B, L, -1, attn.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.write(i, k, v, start_pos)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=attn.scaling, enable_gqa=k.shape[1] != q.shape[1]
        )
        x = x + attn.o_proj(y.transpose(1, 2).reshape(B, L, -1))
        h = rms_norm(layer.post_attention_layernorm, x)
        x = x + layer.mlp.down_proj(F.silu(layer.mlp.gate_proj(h)) * layer.mlp.up_proj(h))
    return lm.lm_head(rms_norm(body.norm, x[:, first_logit:]))
