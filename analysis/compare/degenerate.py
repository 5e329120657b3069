"""Degenerate comparisons: a method cell that cannot differ from what it is compared with.

Two kinds, both reported once and kept out of every multiple-testing family (a test of Δ ≡ 0 spends a
share of α on nothing, and a twin tested twice counts one result two times):
- **the control's config**: its composed config equals its matched grpo control's except ``method.name``
  (``steerbench.comparisons.same_config``: ``release/clip_higher`` is grpo with the release's ε_high);
- **identical runs**: on every shared seed its metrics (timing aside) equal, value for value, those of
  grpo or of another method cell earlier in the report order (clip_cov and kl_cov when neither selects a
  token). A later twin names the earlier one and is reported with it.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

# what every method logs and a run's trajectory determines: equal values at every step are the same run
# (method-specific keys such as a loss's own diagnostics, and timing, are left out)
TRAJECTORY = ("entropy/", "reward/", "acc/", "val/", "len/")


def fingerprints(frame: pd.DataFrame) -> dict[str, str]:
    """run → a digest of its trajectory: every step's ``TRAJECTORY`` metrics (equal digests: identical runs)."""
    keep = ["step", *sorted(c for c in frame.columns if str(c).startswith(TRAJECTORY))]
    out = {}
    for run, df in frame.groupby("run", sort=True):
        rows = df.sort_values("step")[keep].values.tolist()
        values = [[None if pd.isna(v) else v for v in row] for row in rows]
        out[str(run)] = hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()
    return out


def identical_runs(cell: pd.DataFrame, other: pd.DataFrame, prints: dict[str, str]) -> bool:
    """Every seed both cells ran gave the same trajectory (at least one shared seed; a run without a
    fingerprint in ``prints`` is never called identical)."""
    mine = dict(zip(cell["seed"], cell["run"], strict=True))
    theirs = dict(zip(other["seed"], other["run"], strict=True))
    shared = sorted(set(mine) & set(theirs))
    known = [(prints.get(mine[s]), prints.get(theirs[s])) for s in shared]
    return bool(known) and all(a is not None and a == b for a, b in known)
