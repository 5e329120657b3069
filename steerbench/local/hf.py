"""Any local Hugging Face causal LM as an embedded-backend policy (same call as `TinyPolicy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from steerbench.errors import UsageError


class HFPolicy(nn.Module):
    """Wraps a transformers causal LM: `forward(tokens, kv_cache=None, start_pos=0) -> float32 logits`.

    The KV cache is transformers' own `DynamicCache`, which grows in place; `start_pos` is implied by its
    length and accepted only so the sampler can call both model kinds the same way.
    """

    def __init__(self, lm: Any) -> None:
        super().__init__()
        self.lm = lm
        self.vocab_size = int(lm.config.vocab_size)

    def new_kv_cache(self, batch_size: int) -> Any:
        from transformers import DynamicCache

        return DynamicCache()

    def forward(self, tokens: torch.Tensor, kv_cache: Any = None, start_pos: int = 0) -> torch.Tensor:
        out = self.lm(input_ids=tokens, past_key_values=kv_cache, use_cache=kv_cache is not None)
        return out.logits.float()


def load_hf_policy(path: str | Path) -> HFPolicy:
    """Load a causal LM saved with `save_pretrained` from a local directory (never downloads)."""
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
        lm = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load the causal LM weights at {str(path)!r}: {err}") from err
    return HFPolicy(lm)
