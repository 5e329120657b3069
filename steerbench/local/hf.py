"""Any local Hugging Face causal LM as an embedded-backend policy (same call as `TinyPolicy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from steerbench.errors import UsageError
from steerbench.local.llama import GrowingKVCache, llama_forward, native_supported


class HFPolicy(nn.Module):
    """Wraps a transformers causal LM: `forward(tokens, kv_cache=None, start_pos=0) -> logits`, float32
    (float64 for a float64 model, so exactness checks stay exact).

    Llama-family models (`steerbench.local.llama.native_supported`: Llama, Qwen2) run a native forward on
    the same weights with a preallocated, growing KV cache; others run transformers' forward with its own
    `DynamicCache`, whose length implies `start_pos` (accepted so the sampler calls every model alike).

    With ``pad_id`` set, rows may be LEFT-padded with it (prompts of different lengths in one batch): each
    row's leading pads are masked out of attention and its positions count from its first real token, so
    a padded row scores exactly like the same row unpadded. A pass from position 0 counts the leading pads;
    with a cache it keeps them there (``pad_lead``), for the passes that continue those rows (decoding
    steps, a shared prompt's responses).
    """

    partial_logits = True  # forward(..., first_logit=k) computes logits from position k only

    def __init__(self, lm: Any, pad_id: int | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.vocab_size = int(lm.config.vocab_size)
        self.pad_id = pad_id
        self.native = native_supported(lm.config)

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> Any:
        if self.native:
            return GrowingKVCache(len(self.lm.model.layers), max_len or 64)
        from transformers import DynamicCache

        return DynamicCache()

    def forward(
        self, tokens: torch.Tensor, kv_cache: Any = None, start_pos: int = 0, first_logit: int = 0
    ) -> torch.Tensor:
        """Logits (B, L − first_logit, V) of tokens (B, L) at positions from ``start_pos``: only positions
        ``first_logit`` on (the LM head over a 50k vocabulary costs as much as several layers, and a prompt's
        positions predict nothing the trainer scores)."""
        lead = self._pad_lead(tokens, kv_cache, start_pos)
        if self.native:
            logits = llama_forward(self.lm, tokens, kv_cache, start_pos, lead, first_logit)
        else:
            padding = {}
            if lead is not None:
                keys = torch.arange(start_pos + tokens.shape[1], device=tokens.device)
                padding = {
                    "attention_mask": (keys >= lead[:, None]).long(),
                    "position_ids": (keys[start_pos:] - lead[:, None]).clamp_min(0),
                }
            out = self.lm(
                input_ids=tokens, past_key_values=kv_cache, use_cache=kv_cache is not None, **padding
            )
            logits = out.logits[:, first_logit:]
        return logits if logits.dtype == torch.float64 else logits.float()  # float64 stays exact

    def _pad_lead(self, tokens: torch.Tensor, kv_cache: Any, start_pos: int) -> torch.Tensor | None:
        """Leading pads per row (B,), or None where no row has any (the plain causal forward is exact)."""
        if self.pad_id is None:
            return None
        if kv_cache is not None and start_pos > 0:
            return getattr(kv_cache, "pad_lead", None)
        counted = leading_pads(tokens, self.pad_id)
        lead = counted if bool(counted.any()) else None
        if kv_cache is not None:  # transformers' DynamicCache takes the attribute like ours
            kv_cache.pad_lead = lead
        return lead


def leading_pads(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B,) the number of ``pad_id`` s before each row's first other token."""
    return (tokens != pad_id).long().cumsum(1).eq(0).sum(1)


def left_pad_attention(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """1 from each row's first non-pad token on (later pad ids, e.g. an EOS used as pad, are real tokens)."""
    return ((tokens != pad_id).long().cumsum(1) > 0).long()


def load_hf_policy(path: str | Path, dtype: torch.dtype | None = None) -> HFPolicy:
    """Load a causal LM saved with `save_pretrained` from a local directory (never downloads).

    ``dtype`` loads the weights in that dtype (None: as transformers defaults, float32)."""
    try:
        import transformers
    except ImportError as err:
        raise UsageError(
            "loading a Hugging Face model needs transformers: pip install 'steerbench[hf]'"
        ) from err
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UsageError(
            f"model path {str(path)!r} is not a local Hugging Face model directory (no config.json); "
            "pass a directory written by save_pretrained, or use the embedded tiny model"
        )
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read the model config at {str(path)!r}: {err}") from err
    if type(config) not in transformers.MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UsageError(
            f"model at {str(path)!r} has type {config.model_type!r}, which is not a causal LM; "
            "steerbench needs a decoder-only model loadable with AutoModelForCausalLM"
        )
    try:
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, **({"dtype": dtype} if dtype is not None else {})
        )
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load the causal LM weights at {str(path)!r}: {err}") from err
    return HFPolicy(lm)
