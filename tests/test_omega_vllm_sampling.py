"""validate-omega's vLLM rollouts: flag resolution, and the conversion of vLLM's completions into the
(tokens, response_mask) layout of ``generate``. vLLM needs a GPU and is not installed on CPU machines, so its
engine is stood in for by a recording object with vLLM's output shape; the GPU recipe
(benchmarks/gpu_check.py) runs the real engine."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest
import torch
from omega_helpers import run_validate_omega as run_cli

from steerbench.analysis.omega.vllm_sampling import resolve_sampler, vllm_generate, vllm_installed
from steerbench.errors import UsageError

PAD, EOS = 0, 9


@dataclass
class Completion:
    token_ids: list[int]
    finish_reason: str


@dataclass
class RecordingEngine:
    """Answers each request with a scripted completion and records what it was asked."""

    script: list[Completion]
    requests: list = field(default_factory=list)
    params: list = field(default_factory=list)

    def generate(self, requests, params, use_tqdm=False):
        self.requests, self.params = requests, params
        return [types.SimpleNamespace(outputs=[c]) for c in self.script]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("vllm")
    module.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)


def test_completions_become_generates_layout(fake_vllm: None) -> None:
    prompts = torch.tensor([[PAD, PAD, 5, 6], [3, 4, 5, 6], [PAD, 7, 7, 7]])
    engine = RecordingEngine(
        [
            Completion([11, 12, EOS], "stop"),  # stopped on the EOS, which vLLM returned
            Completion([13], "stop"),  # stopped on the EOS, which vLLM left out
            Completion([14, 15, 16, 17], "length"),  # hit max_tokens: no EOS to add
        ]
    )
    tokens, mask = vllm_generate(engine, prompts, PAD, 4, 0.7, EOS, torch.Generator().manual_seed(3))
    # the left padding is stripped from what vLLM sees, kept in what the caller gets back
    assert [r["prompt_token_ids"] for r in engine.requests] == [[5, 6], [3, 4, 5, 6], [7, 7, 7]]
    assert torch.equal(tokens[:, :4], prompts)
    assert tokens[:, 4:].tolist() == [[11, 12, EOS, PAD], [13, EOS, PAD, PAD], [14, 15, 16, 17]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    p = engine.params[0]
    assert (p["temperature"], p["top_k"], p["top_p"], p["max_tokens"]) == (0.7, -1, 1.0, 4)
    assert p["stop_token_ids"] == [EOS]
    # one seed per row, drawn from the caller's generator: the same seed draws the same rollouts
    seeds = [q["seed"] for q in engine.params]
    assert len(set(seeds)) == 3
    vllm_generate(engine, prompts, PAD, 4, 0.7, EOS, torch.Generator().manual_seed(3))
    assert [q["seed"] for q in engine.params] == seeds


def test_auto_samples_with_generate_without_a_gpu() -> None:
    assert resolve_sampler("auto", torch.device("cpu")) == "generate"
    assert resolve_sampler("generate", torch.device("cpu")) == "generate"
    assert resolve_sampler("auto", torch.device("cuda"), torch.float64) == "generate"  # vLLM has no float64
    with pytest.raises(UsageError, match="no float64"):
        resolve_sampler("vllm", torch.device("cuda"), torch.float64)
    with pytest.raises(UsageError, match="needs a GPU"):
        resolve_sampler("vllm", torch.device("cpu"))
    with pytest.raises(UsageError, match="unknown"):
        resolve_sampler("beam", torch.device("cpu"))
    if not vllm_installed():
        with pytest.raises(UsageError, match="pip install vllm"):
            resolve_sampler("vllm", torch.device("cuda"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sampler", "beam"], "--sampler='beam' is unknown"),
        (["--sampler", "vllm"], "samples Hugging Face models"),
        (["--sampler", "vllm", "--model", "x", "--device", "cpu"], "needs a GPU"),
    ],
)
def test_bad_sampler_flags_exit_2(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(argv, monkeypatch) == 2
    assert message in " ".join(capsys.readouterr().err.split())
