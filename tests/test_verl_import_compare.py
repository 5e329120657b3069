"""A verl run imported from its file-logger JSONL gives the same compare table as a local run store."""

import json
import shutil

import pandas as pd
from local_helpers import TINY

from steerbench.analysis.compare.runs import load_runs
from steerbench.analysis.compare.summary import cell_summary
from steerbench.config import compose
from steerbench.execute import execute
from steerbench.verl.importer import import_verl_logs

# What verl logs, per steerbench metric (the inverse of the importer's mapping, written out by hand)
AS_VERL = {
    "entropy/mean": ("actor/entropy", lambda v: v),
    "clip/frac_high": ("actor/pg_clipfrac", lambda v: v),
    "clip/frac_low": ("actor/pg_clipfrac_lower", lambda v: v),
    "reward/mean": ("critic/score/mean", lambda v: 2 * v - 1),  # the verl reward is ±1
    "len/response_mean": ("response_length/mean", lambda v: v),
    "time/step_s": ("timing_s/step", lambda v: v),
    "val/pass@1": ("val-core/steerbench/add/acc/mean@8", lambda v: v),
}


def test_imported_verl_logs_summarise_like_the_local_run(tmp_path):
    local = tmp_path / "local" / "run"
    execute(compose([*TINY, "trainer.steps=6"]), local)
    rows = [json.loads(line) for line in (local / "metrics.jsonl").read_text().splitlines()]
    # the local store, cut to the metrics verl logs ("of the same shape")
    same_shape = [{"step": r["step"], **{k: r[k] for k in AS_VERL if k in r}} for r in rows]
    (local / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in same_shape))

    verl_run = tmp_path / "verl" / "run"
    shutil.copytree(local, verl_run)
    (verl_run / "metrics.jsonl").unlink()
    log = verl_run / "verl_logs" / "attempt-000.jsonl"
    log.parent.mkdir()
    lines = [
        {"step": r["step"], "data": {AS_VERL[k][0]: AS_VERL[k][1](v) for k, v in r.items() if k != "step"}}
        for r in same_shape
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert import_verl_logs(None, verl_run) == len(same_shape)

    ours, theirs = (cell_summary(load_runs([tmp_path / name]).frame) for name in ("local", "verl"))
    numeric = [c for c in ours.columns if pd.api.types.is_numeric_dtype(ours[c]) and ours[c].notna().any()]
    for needed in (
        "final_entropy_mean",
        "final_pass1_mean",
        "entropy_area_mean",
        "dH_abs_p90_mean",
        "clip_high_mean",
        "clip_low_mean",
    ):
        assert needed in numeric, needed
    pd.testing.assert_frame_equal(ours[numeric], theirs[numeric], check_exact=False, rtol=1e-9)
