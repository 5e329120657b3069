"""validate-omega is memory-bounded by default: the row chunk comes from a measured bytes-per-token model."""

from __future__ import annotations

import json
import mmap
import subprocess
import sys

import pytest
import torch

from steerbench.analysis.omega.measure import MemoryShape, fit_row_chunk

SHAPE = MemoryShape(params=135_000_000, layers=30, hidden=576, vocab=49152, dtype_bytes=4)  # SmolLM2-135M


def test_the_chosen_chunk_is_the_largest_that_fits_the_budget():
    length = 200
    for budget_gb in (3, 6, 12, 100):
        budget = budget_gb * 2**30
        chunk = fit_row_chunk(64, length, SHAPE, budget)
        assert SHAPE.predicted_peak(chunk, length) <= budget or chunk == 1
        assert chunk == 64 or SHAPE.predicted_peak(chunk + 1, length) > budget
    small, large = fit_row_chunk(64, length, SHAPE, 3 * 2**30), fit_row_chunk(64, length, SHAPE, 12 * 2**30)
    assert 1 <= small < large <= 64
    # the case killed at 24 GB: 32 rows of ~200 tokens at once, far over the default budget (half the RAM)
    assert SHAPE.predicted_peak(32, 200) > 12 * 2**30
    assert fit_row_chunk(32, 200, SHAPE, 12 * 2**30) < 32
    assert fit_row_chunk(64, length, SHAPE, 0) == 1  # nothing fits: one row, and the caller warns


def test_the_shape_is_read_from_hugging_face_and_tiny_models():
    transformers = pytest.importorskip("transformers")
    from steerbench.local.hf import HFPolicy
    from steerbench.local.model import ModelConfig, TinyPolicy

    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4
    )
    lm = transformers.LlamaForCausalLM(cfg)
    hf = MemoryShape.of(HFPolicy(lm), torch.bfloat16)
    assert (hf.layers, hf.hidden, hf.vocab, hf.dtype_bytes) == (3, 32, 96, 2)
    assert hf.params == sum(p.numel() for p in lm.parameters())
    tiny = MemoryShape.of(
        TinyPolicy(ModelConfig(vocab_size=21, d_model=32, n_layer=2, n_head=4)), torch.float32
    )
    assert (tiny.layers, tiny.hidden, tiny.vocab, tiny.dtype_bytes) == (2, 32, 21, 4)


MEASURE = """
import json, resource, sys, torch, transformers
from steerbench.analysis.omega.measure import MemoryShape, RolloutBatch, measure_entropy_change
from steerbench.local.hf import HFPolicy
torch.manual_seed(0)
cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=128, intermediate_size=384, num_hidden_layers=6,
                               num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
policy = HFPolicy(transformers.LlamaForCausalLM(cfg))
rows, prompt, length = 6, 8, 120
batch = RolloutBatch(tokens=torch.randint(0, 32000, (rows, prompt + length)), prompt_len=prompt,
                     response_mask=torch.ones(rows, length), advantages=torch.randn(rows, length))
before = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
measure_entropy_change(policy, batch, row_chunk=rows, estimators=("steer_release", "jvp"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"measured": peak - before,
                  "predicted": MemoryShape.of(policy, torch.float32).predicted_peak(rows, prompt + length)}))
"""


@pytest.mark.slow
def test_the_memory_model_predicts_a_fresh_measurement_within_a_factor_of_1_5():
    """A shape outside the fit's points (benchmarks/omega_memory.py), measured in a fresh process."""
    pytest.importorskip("transformers")
    out = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["predicted"] / 1.5 <= result["measured"] <= result["predicted"] * 1.5, result


def test_the_measured_peak_counts_from_the_restart_not_from_earlier_peaks():
    from steerbench.analysis.omega.validate import peak_memory_bytes, resident_bytes

    cpu = torch.device("cpu")
    earlier = torch.ones(64 * 2**20)  # 256 MiB held, then freed: an earlier peak (e.g. sampling)
    del earlier
    start = resident_bytes(cpu)
    assert peak_memory_bytes(cpu) - start < 64 * 2**20  # the earlier 256 MiB no longer counts
    # 128 MiB during the "measurement", in fresh pages: an allocator may hand back memory that is already
    # resident (freed by earlier tests, never returned to the OS), which would not raise the peak at all
    held = mmap.mmap(-1, 128 * 2**20)
    held.write(b"\x01" * len(held))
    assert peak_memory_bytes(cpu) - start >= 120 * 2**20
    held.close()


def test_without_proc_the_budget_falls_back_to_a_quarter_of_physical_ram(monkeypatch):
    import os

    from steerbench.analysis.omega import validate

    def no_proc(*_a, **_k):
        raise FileNotFoundError("/proc/meminfo")

    monkeypatch.setattr(validate, "_proc_status_bytes", no_proc)
    budget = validate.memory_budget(torch.device("cpu"), None)
    assert budget == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4
    assert validate.memory_budget(torch.device("cpu"), 2.5) == 2.5 * 2**30
