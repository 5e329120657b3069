"""Hugging Face causal LMs load from a local path and plug into the same sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from steerbench.errors import UsageError  # noqa: E402
from steerbench.local.hf import load_hf_policy  # noqa: E402
from steerbench.local.sampler import response_logprobs, sample  # noqa: E402


def save_tiny(tmp_path: Path, config: object) -> Path:
    return saved_and_original(tmp_path, config)[0]


def saved_and_original(tmp_path: Path, config: object) -> tuple[Path, object]:
    """A tiny causal LM saved to ``tmp_path`` and the in-memory model it was saved from."""
    torch.manual_seed(0)
    original = transformers.AutoModelForCausalLM.from_config(config).eval()
    original.save_pretrained(tmp_path)
    return tmp_path, original


TINY_CONFIGS = {
    "gpt2": lambda: transformers.GPT2Config(vocab_size=24, n_embd=32, n_layer=2, n_head=2, n_positions=32),
    "llama": lambda: transformers.LlamaConfig(
        vocab_size=24, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(TINY_CONFIGS))
def test_saved_causal_lm_loads_back_with_the_policy_call(tmp_path: Path, kind: str) -> None:
    path, original = saved_and_original(tmp_path, TINY_CONFIGS[kind]())
    policy = load_hf_policy(path).eval()
    tokens = torch.randint(0, 24, (2, 9))
    logits = policy(tokens)
    assert logits.shape == (2, 9, 24) and logits.dtype == torch.float32
    # the saved weights, not a fresh initialisation: every tensor and the logits equal the original's
    loaded = policy.lm.state_dict()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    with torch.no_grad():
        torch.testing.assert_close(logits, original(input_ids=tokens).logits.float(), atol=0, rtol=0)


@pytest.mark.parametrize("kind", sorted(TINY_CONFIGS))
def test_sampler_on_hf_model_agrees_with_teacher_forcing(tmp_path: Path, kind: str) -> None:
    policy = load_hf_policy(save_tiny(tmp_path, TINY_CONFIGS[kind]())).eval()
    prompts = torch.randint(3, 24, (4, 5), generator=torch.Generator().manual_seed(0))
    r = sample(policy, prompts, 10, 1.0, eos_id=2, generator=torch.Generator().manual_seed(1))
    log_prob, entropy = response_logprobs(policy, r.tokens, r.prompt_len, 1.0)
    real = r.response_mask.bool()  # the sampler's values after a row's EOS are 0
    torch.testing.assert_close(log_prob[real], r.old_log_prob[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy[real], r.entropy[real], atol=1e-5, rtol=0)


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a local Hugging Face model directory"):
        load_hf_policy(tmp_path / "nope")


def test_non_causal_model_is_a_usage_error(tmp_path: Path) -> None:
    transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path
    )
    with pytest.raises(UsageError, match="not a causal LM"):
        load_hf_policy(tmp_path)


def test_config_without_weights_is_a_usage_error(tmp_path: Path) -> None:
    TINY_CONFIGS["gpt2"]().save_pretrained(tmp_path)
    with pytest.raises(UsageError, match="cannot load the causal LM weights"):
        load_hf_policy(tmp_path)
