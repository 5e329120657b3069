"""The native Llama-family forward agrees with transformers' own forward on the same weights."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from steerbench.local.hf import HFPolicy  # noqa: E402
from steerbench.local.llama import GrowingKVCache, native_supported  # noqa: E402
from steerbench.local.sampler import response_logprobs, sample  # noqa: E402

SHAPE = dict(
    vocab_size=24, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=160,
)  # fmt: skip
FAMILIES = {
    "llama": lambda: transformers.LlamaConfig(**SHAPE),
    "llama_bias": lambda: transformers.LlamaConfig(**SHAPE, attention_bias=True),
    "qwen2": lambda: transformers.Qwen2Config(**SHAPE),  # q/k/v biases, grouped-query attention
}


def model(kind: str) -> object:
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(FAMILIES[kind]()).double().eval()


def transformers_logits(policy: HFPolicy, tokens: torch.Tensor) -> torch.Tensor:
    policy.native = False  # the same adapter through transformers' forward: the independent reference
    try:
        return policy(tokens)
    finally:
        policy.native = True


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_native_forward_matches_transformers_with_left_padding(kind: str) -> None:
    policy = HFPolicy(model(kind), pad_id=0)
    assert policy.native
    tokens = torch.randint(1, 24, (3, 10), generator=torch.Generator().manual_seed(1))
    tokens[1, :4] = 0  # a left-padded row
    with torch.no_grad():
        native, reference = policy(tokens), transformers_logits(policy, tokens)
        unpadded = policy(tokens[1:2, 4:])
    torch.testing.assert_close(native[[0, 2]], reference[[0, 2]], atol=1e-12, rtol=0)
    torch.testing.assert_close(native[1, 4:], reference[1, 4:], atol=1e-12, rtol=0)
    # padding changes nothing: the padded row scores like the same tokens alone, positions from 0
    torch.testing.assert_close(native[1, 4:], unpadded[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", sorted(FAMILIES))
@pytest.mark.parametrize("max_len, capacity", [(None, 256), (20, 160)])  # 64 → 128 → 256; 20 → 40 → 80 → 160
def test_native_kv_cache_decoding_matches_one_full_forward_past_the_first_allocation(
    kind: str, max_len: int | None, capacity: int
) -> None:
    policy = HFPolicy(model(kind))
    tokens = torch.randint(1, 24, (2, 150), generator=torch.Generator().manual_seed(2))
    cache = policy.new_kv_cache(2, max_len)
    assert isinstance(cache, GrowingKVCache)
    with torch.no_grad():
        steps = [policy(tokens[:, :5], cache, 0)]
        assert cache.k[0] is not None and cache.k[0].shape[2] == (max_len or 64)
        steps += [policy(tokens[:, t : t + 1], cache, t) for t in range(5, 150)]
        full = transformers_logits(policy, tokens)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-12, rtol=0)
    assert cache.k[0] is not None and cache.k[0].shape[2] == capacity


def test_sampler_and_teacher_forcing_agree_and_gradients_match_transformers() -> None:
    policy = HFPolicy(model("qwen2"))
    prompts = torch.randint(3, 24, (4, 5), generator=torch.Generator().manual_seed(3))
    rollout = sample(policy, prompts, 12, 1.0, eos_id=2, generator=torch.Generator().manual_seed(4))
    log_prob, entropy = response_logprobs(policy, rollout.tokens, rollout.prompt_len, 1.0)
    real = rollout.response_mask.bool()  # the sampler's values after a row's EOS are 0
    torch.testing.assert_close(log_prob[real], rollout.old_log_prob[real], atol=1e-6, rtol=0)
    torch.testing.assert_close(entropy[real], rollout.entropy[real], atol=1e-6, rtol=0)
    params = list(policy.parameters())
    native = torch.autograd.grad(policy(rollout.tokens).logsumexp(-1).sum(), params)
    reference = torch.autograd.grad(transformers_logits(policy, rollout.tokens).logsumexp(-1).sum(), params)
    for a, b in zip(native, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert all(g.abs().sum() > 0 for g in native)


def test_unsupported_variants_keep_the_transformers_forward() -> None:
    scaled = transformers.LlamaConfig(**SHAPE, rope_parameters={"rope_type": "linear", "factor": 2.0})
    assert not native_supported(scaled)
    assert not native_supported(transformers.LlamaConfig(**SHAPE, mlp_bias=True))
    assert not native_supported(transformers.GPT2Config(vocab_size=24, n_embd=32, n_layer=1, n_head=2))
    torch.manual_seed(0)
    policy = HFPolicy(transformers.AutoModelForCausalLM.from_config(scaled).eval())
    assert not policy.native
    tokens = torch.randint(0, 24, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(policy(tokens), policy.lm(input_ids=tokens).logits, atol=0, rtol=0)


def test_rope_is_bit_for_bit_transformers_rotate_half_form_values_and_gradients() -> None:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from steerbench.local.llama import rotary_cos_sin, rotate

    lm = transformers.AutoModelForCausalLM.from_config(FAMILIES["llama"]())
    positions = torch.arange(3, 10)[None].expand(5, -1)
    cos, signed_sin = rotary_cos_sin(lm.model.rotary_emb, positions, torch.float32)
    reference_cos, reference_sin = lm.model.rotary_emb(torch.zeros(1), positions)
    assert torch.equal(cos[:, 0], reference_cos)
    q = torch.randn(5, 4, 7, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ours = rotate(q, cos, signed_sin)
    theirs, _ = apply_rotary_pos_emb(q, q, reference_cos, reference_sin)
    assert torch.equal(ours, theirs)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
    (ours_grad,) = torch.autograd.grad(ours, q, upstream)
    (theirs_grad,) = torch.autograd.grad(theirs, q, upstream)
    assert torch.equal(ours_grad, theirs_grad)
