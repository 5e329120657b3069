"""A tiny random-weight Qwen2 causal LM with a byte-level BPE tokenizer and a chat template, built offline.

For tests, the GPU check of ``validate-omega`` (``benchmarks/gpu_check.py``) and the verl smoke runs
(``steerbench.verl.tiny``): real transformers and tokenizers code paths (chat template, padding, generate,
vLLM) without downloading anything. A random model scores nothing on a real reward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# Qwen's chat format, reduced to what verl's RLHFDataset and validate-omega need
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(texts: list[str] | None, vocab_size: int = 300) -> Any:
    """Byte-level BPE with Qwen's chat tokens, wrapped as a transformers tokenizer: trained on ``texts`` up
    to ``vocab_size`` ids, or with ``texts=None`` no merges at all (one token per byte, 256 + 3 ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if texts is None:
        tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[]))
        tok.add_special_tokens(SPECIALS)
    else:
        tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=texts is not None)
    tok.decoder = decoders.ByteLevel()
    if texts is not None:
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=alphabet
        )
        tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_qwen2(
    path: Path,
    texts: list[str] | None = None,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = 300,
    dtype: torch.dtype = torch.float32,
    pad_vocab_to: int = 1,
    max_positions: int = 512,
    family: str = "qwen2",
) -> Path:
    """save_pretrained a random Qwen2 (``layers`` × ``hidden``, head dim hidden / heads; ``family="llama"``:
    a Llama of that shape) and its tokenizer (:func:`train_tokenizer`) under ``path``; the embedding is
    padded to a multiple of ``pad_vocab_to``."""
    import transformers

    classes = {"qwen2": ("Qwen2Config", "Qwen2ForCausalLM"), "llama": ("LlamaConfig", "LlamaForCausalLM")}
    config_class, model_class = (getattr(transformers, name) for name in classes[family])
    tokenizer = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=-(-len(tokenizer) // pad_vocab_to) * pad_vocab_to,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = model_class(config).to(dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
