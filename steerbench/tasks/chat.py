"""verl-format chat prompts for a Hugging Face model: rows of a parquet file, rendered with the model's own chat
template, and left-padded into one batch.

A verl-format row holds ``prompt`` (chat messages ``[{"role", "content"}, ...]``),
``reward_model.ground_truth``, ``data_source`` and ``extra_info``. The embedded backend's text tasks and
``validate-omega --data`` read the same rows the same way, so a prompt is the same token ids in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from steerbench.errors import UsageError

VERL_COLUMNS = ("prompt", "reward_model")


def read_verl_parquet(path: str | Path, flag: str = "--data") -> list[dict[str, Any]]:
    """Rows of a verl-format parquet file as dicts; a usage error names ``flag``, the file and what is missing."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"{flag} {str(path)!r} does not exist; pass a verl-format parquet file")
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001  any parquet/arrow error means: not a readable parquet file
        raise UsageError(f"cannot read {str(path)!r} as parquet: {err}") from None
    missing = [c for c in VERL_COLUMNS if c not in frame.columns]
    if missing or frame.empty:
        raise UsageError(
            f"{str(path)!r} is not a verl-format dataset: "
            + (f"no column(s) {', '.join(missing)}" if missing else "it has no rows")
            + " (expected prompt = chat messages, reward_model.ground_truth, data_source)"
        )
    return frame.to_dict("records")


def prompt_ids(tokenizer: Any, messages: Any) -> list[int]:
    """The model's chat template with the generation prompt, or the plain contents without a template."""
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = "\n\n".join(m["content"] for m in messages) + "\n\n"
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def left_pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """(B, longest) long tensor, each row's ids flush right after ``pad_id`` s: every prompt ends where the
    response starts, so position P+t is response token t in every row."""
    width = max(len(r) for r in rows)
    return torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)


def load_hf_tokenizer(path: str | Path) -> Any | None:
    """The tokenizer saved beside the model (``tokenizer.json`` or a vocabulary), or None if there is none."""
    import transformers

    path = Path(path)
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        return None
    try:
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load the tokenizer saved at {str(path)!r}: {err}") from err
