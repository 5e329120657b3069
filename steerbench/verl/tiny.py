"""A tiny random-weight Qwen2 and a byte-level tokenizer, built offline, for verl smoke tests.

Nothing is downloaded: the tokenizer is a byte-level BPE with no merges (one token per byte, 256 ids)
plus Qwen's chat tokens, and the model is ``Qwen2ForCausalLM`` with head dim 64 (what vLLM's and
flash-attention's kernels support), random weights from ``seed``. A random model scores nothing on a
real reward, so smoke runs use ``scenario=random_reward``.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen's chat format, reduced to what verl's RLHFDataset needs (apply_chat_template with add_generation_prompt)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
HEAD_DIM = 64


def build_tokenizer(out: Path):
    """Save a byte-level tokenizer (256 byte tokens + chat specials) to ``out``; returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    return tokenizer


def build_tiny_qwen2(out: Path, *, seed: int = 0, layers: int = 2, heads: int = 2) -> Path:
    """Write a random ``Qwen2ForCausalLM`` (hidden = heads × 64) and its tokenizer to ``out``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    vocab = ((len(tokenizer) + 63) // 64) * 64  # padded like real checkpoints
    config = Qwen2Config(  # type: ignore[call-arg]  # head_dim/torch_dtype pass through **kwargs
        vocab_size=vocab,
        hidden_size=heads * HEAD_DIM,
        intermediate_size=4 * heads * HEAD_DIM,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=1,
        head_dim=HEAD_DIM,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]  # transformers types .to oddly
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    return out


def tiny_run_inputs(root: Path) -> dict[str, Path]:
    """``{"model", "train", "val"}``: a tiny Qwen2 dir, ``add`` problems to train on, ``countdown`` to validate.

    Train and val have different data sources, so ``scenario=random_reward`` (coin flips on the training
    sources only) is allowed.
    """
    from steerbench.verl.prepare import PrepareSpec, prepare

    root = Path(root)
    model = build_tiny_qwen2(root / "model")
    train = prepare(PrepareSpec(task="add", out=root / "add", train_size=16, val_size=4))["train"]
    val = prepare(PrepareSpec(task="countdown", out=root / "countdown", train_size=4, val_size=4))["val"]
    return {"model": model, "train": train, "val": val}
