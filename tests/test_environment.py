"""Dependency drift fails here, as one test that names the packages, before it fails a hundred others.

Every third-party path the project relies on is imported (and transformers' model classes run a forward of
a tiny model), each in a fresh interpreter so one broken import cannot hide another. On failure the
message lists what broke, its last error line, and the installed versions of the packages involved; the
fix is the locked install (requirements/test.txt, README) or a refresh (requirements/refresh.py).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import pytest

TINY_FORWARD = """
import torch, transformers as T
cfg = T.{config}(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
model = T.{model}(cfg).eval()
logits = model(torch.tensor([[1, 2, 3]])).logits
assert logits.shape == (1, 3, 32) and torch.isfinite(logits).all(), logits
"""

GPT2_FORWARD = """
import torch, transformers as T
model = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=32, n_embd=16, n_layer=2, n_head=4, n_positions=16)).eval()
logits = model(torch.tensor([[1, 2, 3]])).logits
assert logits.shape == (1, 3, 32) and torch.isfinite(logits).all(), logits
"""

# what the project imports → the code that must run
PATHS = {
    "transformers Qwen2 (forward)": TINY_FORWARD.format(config="Qwen2Config", model="Qwen2ForCausalLM"),
    "transformers Llama (forward)": TINY_FORWARD.format(config="LlamaConfig", model="LlamaForCausalLM"),
    "transformers GPT-2 (forward)": GPT2_FORWARD,
    "transformers.activations": "import transformers.activations",
    "verl v1 trainer": "import verl.trainer.ppo.v1.trainer_base, verl.trainer.main_ppo",
    "verl losses": "from verl.workers.utils.losses import ppo_loss; from verl.trainer.ppo import core_algos",
    "ray": "import ray; ray.remote",
    "math-verify": "from math_verify import parse, verify; assert verify(parse('$4$'), parse('4'))",
    "hydra": "from hydra import compose, initialize_config_dir; import omegaconf",
    "TransferQueue": "import transfer_queue",
}

# the distributions whose versions decide whether the paths above import
INVOLVED = [
    "torch", "transformers", "kernels", "huggingface-hub", "tokenizers", "safetensors", "accelerate", "peft",
    "verl", "tensordict", "TransferQueue", "ray", "math-verify", "latex2sympy2_extended", "hydra-core",
    "omegaconf", "numpy",
]  # fmt: skip


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _failure(code: str) -> str | None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def test_every_third_party_path_the_project_uses_imports_and_runs():
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = dict(zip(PATHS, pool.map(_failure, PATHS.values()), strict=True))
    broken = {name: err for name, err in errors.items() if err is not None}
    if broken:
        versions = ", ".join(f"{dist} {_version(dist)}" for dist in INVOLVED)
        pytest.fail(
            "dependency drift: "
            + "; ".join(f"{name}: {err}" for name, err in broken.items())
            + f"\ninstalled: {versions}"
            + "\nfix: install through the lock (README's test command) or refresh it: python requirements/refresh.py",
            pytrace=False,
        )


def test_the_drift_report_names_the_failure_and_the_versions(monkeypatch):
    """The report itself: a broken path is named with its error and the installed versions."""
    broken = {"a broken path": "raise ValueError('Either a revision or a version')", "a good one": "pass"}
    monkeypatch.setattr(sys.modules[__name__], "PATHS", broken)
    with pytest.raises(pytest.fail.Exception) as failed:
        test_every_third_party_path_the_project_uses_imports_and_runs()
    message = str(failed.value)
    assert "a broken path: ValueError: Either a revision or a version" in message
    assert "a good one" not in message
    assert f"transformers {_version('transformers')}" in message and "kernels " in message
