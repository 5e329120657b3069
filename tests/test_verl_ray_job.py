"""`--launcher ray` against a real local Ray cluster: ``ray job submit`` waits for the job, the job's cwd is
the shipped working_dir, and the metrics it relays through its logs become the run's imported steps.

The job here is a stand-in for verl (no GPU): it writes two file-logger lines the way verl's FileLogger
does, in the job's cwd, and relays them with the function the shimmed TaskRunner calls."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

pytest.importorskip("verl")

from steerbench.verl.tiny import verl_cfg  # noqa: E402

JOB = textwrap.dedent(
    """
    import json, os, time
    from steerbench.verl.relay import relay_file
    time.sleep(2)  # a launcher that does not wait would import before this
    assert json.load(open("launch.json"))["command"][-2] == "-c"  # the shipped working_dir is the cwd
    path = os.environ["VERL_FILE_LOGGER_PATH"]
    assert not os.path.isabs(path)
    with open(path, "w") as fh:
        for step in (1, 2):
            fh.write(json.dumps({"step": step, "data": {"actor/entropy": 1.0 / step}}) + "\\n")
    relay_file(path)
    raise SystemExit(int(os.environ.get("FAIL_AFTER_RELAY", "0")))
    """
)


@pytest.fixture(scope="module")
def ray_dashboard():
    import ray

    context = ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1")
    try:
        yield "http://" + context.dashboard_url
    finally:
        ray.shutdown()


def launch_for(tmp_path, address, fail=0):
    from steerbench.verl.launch import build_verl_launch

    cfg = verl_cfg(tmp_path, "grpo", "verl.launcher=ray", f"verl.ray_address={address}")
    launch = build_verl_launch(cfg, tmp_path / "run", validate=False)
    runtime_env = json.loads(launch.command[launch.command.index("--runtime-env-json") + 1])
    runtime_env["env_vars"]["FAIL_AFTER_RELAY"] = str(fail)
    runtime_env["env_vars"]["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    del runtime_env["worker_process_setup_hook"]  # nothing Ray-side runs in this stand-in job
    at = launch.command.index("--runtime-env-json") + 1
    launch.command[at] = json.dumps(runtime_env)
    launch.command[launch.command.index("--") + 1 :] = [sys.executable, "-c", JOB]
    return launch


@pytest.mark.slow
def test_ray_launcher_waits_for_the_job_then_imports_its_steps(tmp_path, ray_dashboard):
    from steerbench.runstore import RunStore
    from steerbench.verl.importer import import_verl_logs

    launch = launch_for(tmp_path, ray_dashboard)
    result = launch.run(check=False)
    assert result.returncode == 0
    assert import_verl_logs(None, tmp_path / "run") == 2
    rows = RunStore(tmp_path / "run").read_metrics()
    assert [(r["step"], r["entropy/mean"]) for r in rows] == [(1, 1.0), (2, 0.5)]


@pytest.mark.slow
def test_a_failed_ray_job_is_a_nonzero_exit_and_keeps_what_it_relayed(tmp_path, ray_dashboard):
    launch = launch_for(tmp_path, ray_dashboard, fail=3)
    result = launch.run(check=False)
    assert result.returncode != 0
    from steerbench.verl.importer import import_verl_logs

    # Ray's log tail may repeat lines of a failed job; the import merges by step, so a repeat is harmless
    assert len(set((tmp_path / "run" / "verl_logs" / "attempt-000.jsonl").read_text().splitlines())) == 2
    assert import_verl_logs(None, tmp_path / "run") == 2
