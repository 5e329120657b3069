"""A method is one file: registered the documented way (methods/__init__.py), it is listed by
``steerbench methods``, ordered by compare and composable by ``run``, with no edit to steerbench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from steerbench.analysis.compare.runs import METHOD_ORDER
from steerbench.methods import PAPER_ORDER, REGISTRY, catalog

TOY_METHOD = '''
"""toy: GRPO with every advantage halved (a plugin method for the test)."""
from dataclasses import dataclass

from steerbench.methods.grpo import GRPOConfig, grpo_loss, grpo_shaper
from steerbench.methods.registry import MethodSpec, register


@dataclass
class ToyConfig(GRPOConfig):
    scale: float = 0.5  # multiplies GRPO's advantage


def toy_shaper(rewards, group_index, seq_log_prob, cfg):
    return cfg.scale * grpo_shaper(rewards, group_index, seq_log_prob, cfg)


register(MethodSpec(name="toy", kind="shaper", config=ToyConfig, loss=grpo_loss, shaper=toy_shaper,
                    source="this test", summary="A = scale · A_grpo"))
'''

# The plugin's own pyproject.toml, as the methods package's docstring tells a plugin author to write it.
TOY_PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "toy-steerbench-method"
version = "0.1"

[project.entry-points."steerbench.methods"]
toy = "toy_method"

[tool.setuptools]
py-modules = ["toy_method"]
"""

# Runs with the plugin installed: what each consumer of the registry sees.
PROBE = """
import json
from steerbench.analysis.compare.runs import METHOD_ORDER, sorted_methods
from steerbench.config import compose
from steerbench.methods import catalog
print(json.dumps({
    "order": METHOD_ORDER,
    "sorted": sorted_methods(["unknown", "toy", "grpo"]),
    "catalog": catalog()[-1],
    "composed_scale": compose(["method=toy", "method.scale=0.25"]).method.scale,
}))
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> dict[str, str]:
    """The toy method as its own installed distribution (pip install --target), on PYTHONPATH."""
    source = tmp_path_factory.mktemp("toy_plugin")
    (source / "toy_method.py").write_text(textwrap.dedent(TOY_METHOD))
    (source / "pyproject.toml").write_text(TOY_PYPROJECT)
    site = source / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True, capture_output=True)
    return {**os.environ, "PYTHONPATH": str(site)}


def _steerbench(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "steerbench.cli", *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout


def test_the_registry_lists_the_papers_methods_in_its_order():
    assert tuple(REGISTRY)[: len(PAPER_ORDER)] == PAPER_ORDER
    assert METHOD_ORDER == list(REGISTRY)  # compare reports in the registry's order
    assert [row["name"] for row in catalog()] == list(REGISTRY)


def test_a_registered_plugin_method_is_listed_ordered_and_composable(plugin_path):
    listed = json.loads(_steerbench(plugin_path, "methods", "--json"))
    assert [row["name"] for row in listed] == [*REGISTRY, "toy"]
    assert listed[-1]["knobs"]["scale"] == 0.5 and listed[-1]["kind"] == "shaper"
    assert "toy" in _steerbench(plugin_path, "methods")  # the table too
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=plugin_path)
    seen = json.loads(probe.stdout.splitlines()[-1]) if probe.returncode == 0 else probe.stderr
    assert seen["order"] == [*REGISTRY, "toy"], seen
    assert seen["sorted"] == ["grpo", "toy", "unknown"]  # after the registered ones, before unknown names
    assert seen["catalog"]["name"] == "toy" and seen["catalog"]["summary"] == "A = scale · A_grpo"
    assert seen["composed_scale"] == 0.25  # the config group is generated from the toy's dataclass
