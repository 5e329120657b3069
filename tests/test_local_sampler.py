"""KV-cache sampler: seeded reproducibility, EOS masking, agreement with teacher-forced scoring."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from steerbench.errors import UsageError
from steerbench.local import sampler as sampling
from steerbench.local.model import ModelConfig, TinyPolicy
from steerbench.local.sampler import Rollout, response_logprobs, sample

V, EOS, PAD = 16, 2, 0


def make_model(seed: int = 0) -> TinyPolicy:
    torch.manual_seed(seed)
    model = TinyPolicy(ModelConfig(vocab_size=V, max_seq_len=48)).eval()
    with torch.no_grad():  # make EOS likely so some rows stop early and others do not
        model.embed.weight[EOS] *= 8
    return model


def rollout(seed: int, temperature: float = 1.0, model: TinyPolicy | None = None) -> Rollout:
    prompts = torch.randint(3, V, (16, 6), generator=torch.Generator().manual_seed(123))
    gen = torch.Generator().manual_seed(seed)
    return sample(model or make_model(), prompts, 24, temperature, EOS, gen, pad_id=PAD)


def test_seeded_generator_makes_sampling_bit_reproducible() -> None:
    a, b = rollout(7), rollout(7)
    for name in ("tokens", "response_mask", "old_log_prob", "entropy"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.tokens, rollout(8).tokens)


def test_mask_is_one_through_first_eos_and_tokens_after_it_are_pad() -> None:
    r = rollout(0)
    resp = r.responses
    assert r.tokens.shape[1] == 6 + r.response_mask.shape[1]
    stopped = 0
    for row, mask in zip(resp.tolist(), r.response_mask.tolist(), strict=True):
        if EOS in row:
            stopped += 1
            end = row.index(EOS) + 1
            assert mask == [1.0] * end + [0.0] * (len(row) - end)
            assert all(tok == PAD for tok in row[end:])
        else:
            assert mask == [1.0] * len(row)
    assert stopped > 0


def test_decoding_stops_early_once_every_row_emitted_eos() -> None:
    model = make_model()
    with torch.no_grad():
        model.embed.weight[EOS] *= 50  # EOS dominates every position
    r = rollout(0, model=model)
    assert r.response_mask.shape[1] < 24
    assert bool((r.responses == EOS).any(1).all())


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_response_logprobs_matches_sampler_log_probs_and_entropy(temperature: float) -> None:
    model = make_model()
    r = rollout(3, temperature, model)
    log_prob, entropy = response_logprobs(model, r.tokens, r.prompt_len, temperature)
    real = r.response_mask.bool()  # the sampler's values after a row's EOS are 0, not the pads' scores
    torch.testing.assert_close(log_prob[real], r.old_log_prob[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy[real], r.entropy[real], atol=1e-5, rtol=0)


def test_response_logprobs_keeps_the_graph_for_entropy_and_log_prob() -> None:
    model = make_model()
    r = rollout(0, model=model)
    log_prob, entropy = response_logprobs(model, r.tokens, r.prompt_len, 1.0)
    (log_prob.sum() + entropy.sum()).backward()
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0


def test_entropy_equals_scipy_entropy_of_temperature_scaled_softmax() -> None:
    model, temperature = make_model(), 0.7
    r = rollout(1, temperature, model)
    with torch.no_grad():
        logits = model(r.tokens[:, :-1])[:, r.prompt_len - 1 :].double() / temperature
    expected = scipy.stats.entropy(torch.softmax(logits, -1).numpy(), axis=-1)
    real = r.response_mask.bool().numpy()
    np.testing.assert_allclose(r.entropy.numpy()[real], expected[real], atol=1e-5)


def test_non_positive_temperature_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="temperature"):
        rollout(0, temperature=0.0)


class Recorded(torch.nn.Module):
    """The same model, recording the cache length `sample` asks for and how many rows each decoding step runs
    on; with ``full_length`` its caches are always `max_seq_len` long (what `sample` asked for before)."""

    def __init__(self, model: TinyPolicy, full_length: bool = False) -> None:
        super().__init__()
        self.model, self.full_length = model, full_length
        self.lengths: list[int] = []
        self.rows: list[int] = []

    def new_kv_cache(self, batch_size: int, max_len: int | None = None):  # type: ignore[no-untyped-def]
        self.lengths.append(max_len or 0)
        return self.model.new_kv_cache(batch_size, None if self.full_length else max_len)

    def forward(self, tokens, kv_cache=None, start_pos=0):  # type: ignore[no-untyped-def]
        if tokens.shape[1] == 1:
            self.rows.append(tokens.shape[0])
        return self.model(tokens, kv_cache, start_pos)


def test_sample_sizes_its_cache_to_the_sequences_and_rolls_out_bit_for_bit_as_a_full_length_cache() -> None:
    model = make_model()
    assert model.new_kv_cache(2, 30).k.shape[3] == 30
    assert model.new_kv_cache(2, 500).k.shape[3] == 48  # never past max_seq_len
    full = Recorded(model, full_length=True)
    sized, unsized = rollout(3, model=model), rollout(3, model=full)  # type: ignore[arg-type]
    assert full.lengths == [6 + 24]  # prompt + max_new_tokens
    for name in ("tokens", "response_mask", "old_log_prob", "entropy"):
        assert torch.equal(getattr(sized, name), getattr(unsized, name)), name


def test_dropping_finished_rows_from_the_cache_rolls_out_bit_for_bit_as_running_every_row(
    monkeypatch,
) -> None:
    """One thread, as grid cells run, where torch's matmul takes one kernel for any 4 rows or more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prompts = torch.randint(3, V, (16, 6), generator=torch.Generator().manual_seed(123))
        runs = {}
        for shrink in (0.99, 0.0):  # 0.99: drop finished rows at every step; 0: they stay to the end
            monkeypatch.setattr(sampling, "SHRINK_AT", shrink)
            model = Recorded(make_model())
            out = sample(model, prompts, 42, 1.0, EOS, torch.Generator().manual_seed(5), pad_id=PAD)  # type: ignore[arg-type]
            runs[shrink] = (out, model.rows)
    finally:
        torch.set_num_threads(threads)
    (shrunk, rows), (kept, all_rows) = runs.values()
    assert set(all_rows) == {16} and len(rows) == len(all_rows)
    assert rows == sorted(rows, reverse=True) and sampling.MIN_ROWS <= rows[-1] < 8
    assert int(kept.response_mask.sum(0)[-2]) < 4  # the last steps had 1-3 rows to run: matmul's other kernel
    for name in ("tokens", "response_mask", "old_log_prob", "entropy"):
        assert torch.equal(getattr(shrunk, name), getattr(kept, name)), name
    after_eos = shrunk.response_mask == 0
    assert (
        after_eos.any() and not shrunk.old_log_prob[after_eos].any() and not shrunk.entropy[after_eos].any()
    )
