"""Grids: method × scenario × seed (× override sweeps), validated up front, run resumably.

A grid comes from a YAML in ``experiments/grid/`` (or any path) and/or from flags::

    name: paper                 # the grid folder: <out>/<name>/
    methods: [grpo, steer]
    scenarios: [standard, extreme]
    seeds: [0, 1, 2]
    steps: 60                   # optional: trainer.steps for every cell
    overrides:                  # optional: fixed values, or sweeps (a list → one cell per value)
      trainer.lr: [1.0e-4, 3.0e-4]
      task: add
    exclude: [steer/extreme]    # optional: METHOD/SCENARIO pairs the product leaves out
    method_seeds:               # optional: a method's own seeds (a shared grpo control with more seeds),
      grpo: [0, 1, 2, 3, 4, 5]  #   or one cell's (METHOD/SCENARIO, before the method's)
      steer/extreme: [0, 1, 2, 3]
    design:                     # optional: the analysis, declared before the runs (compare reads it back)
      primary: final_passk      #   the one endpoint the family tests
      test: welch               #   paired (by seed, the default) | welch (two samples of runs)
      pilot: {final_passk: {sd: 0.068, effect: -0.363}}   # for the MDE printed before the runs

Every cell's config is composed (``steerbench.config.compose``) before anything is launched, so a typo
fails the whole grid with exit code 2 before any training. Cells live in ``<out>/<name>/<cell>/`` where
``<cell>`` is ``run_dir_name(cfg)`` plus ``__key=value`` for each swept key. ``grid.json`` in the grid
folder records the grid; running a different grid into the same folder is a usage error, unless it only
adds cells (more seeds, say) and keeps every recorded one as it was. Finished cells
(``meta.json`` status ``done``) are skipped; the others run (``execute`` resumes from the checkpoint).
A failed cell does not stop the others; the caller reports them (exit code 1).

Launchers (``cell_launchers.py``): ``local`` (``--jobs N`` processes forked from a preloaded fork server),
``ray`` (one ``ray.remote`` task per cell) and ``slurm`` (one submitit job per cell).
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from steerbench import cell_launchers
from steerbench.cell_launchers import CellResult
from steerbench.comparisons import CONTROL, TESTS, flatten, same_config
from steerbench.config import compose, to_dict
from steerbench.errors import UsageError
from steerbench.execute import run_dir_name
from steerbench.runstore import atomic_write_json, ensure_writable, variant_of
from steerbench.verl.launch import check_inputs

GRID_KEYS = (
    "name", "description", "methods", "scenarios", "seeds", "method_seeds", "steps", "overrides",
    "method_overrides", "exclude", "design",
)  # fmt: skip
# what a grid may declare as the primary endpoint of its family (compare's per-run statistics)
ENDPOINTS = ("final_passk", "final_pass1", "final_entropy")
MANIFEST = "grid.json"
DEFAULT_OUT = Path("runs")


@dataclass
class GridSpec:
    """What a grid is; ``overrides`` maps a dotted key (or group) to its values (several = a sweep)."""

    name: str = "grid"
    methods: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=lambda: ["standard"])
    seeds: list[int] = field(default_factory=lambda: [0])
    # a method's own seeds in place of ``seeds`` (the shared grpo control given more seeds than each method),
    # keyed by method or by "method/scenario" (one cell's seeds, ahead of its method's)
    method_seeds: dict[str, list[int]] = field(default_factory=dict)
    steps: int | None = None
    overrides: dict[str, list[str]] = field(default_factory=dict)
    # one method's own knobs (a dose sweep of kl's β beside grpo): method → {key: values}
    method_overrides: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    description: str = ""
    exclude: list[str] = field(default_factory=list)  # "method/scenario" pairs the product leaves out
    # the analysis declared before the runs: primary endpoint, pilot (sd of paired seed differences and
    # grpo's own effect per endpoint); compare reads it back from grid.json
    design: dict[str, Any] = field(default_factory=dict)

    def seeds_of(self, method: str, scenario: str) -> list[int]:
        """The seeds of the method's cells in the scenario: the cell's own, else the method's, else the grid's."""
        return self.method_seeds.get(f"{method}/{scenario}", self.method_seeds.get(method, self.seeds))

    def record(self) -> dict[str, Any]:
        """The part of the spec that defines the cells (what grid.json compares)."""
        rec = asdict(self)
        rec.pop("description")
        rec.pop("design")
        # absent, as in grids recorded before the key existed
        for key in ("exclude", "method_overrides", "method_seeds"):
            if not rec[key]:
                rec.pop(key)
        rec["overrides"] = {k: list(v) for k, v in sorted(self.overrides.items())}
        return rec


@dataclass(frozen=True)
class Cell:
    """One run of the grid: its folder name, its overrides, and where it lives."""

    name: str
    overrides: tuple[str, ...]
    run_dir: Path
    method: str
    scenario: str
    seed: int
    variant: str = ""  # the swept overrides (runstore.variant_of), recorded in the run's identity
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # flattened, composed

    def status(self) -> str:
        """done / running / failed from meta.json, 'partial' if a store exists without meta, else 'new'."""
        meta = self.run_dir / "meta.json"
        if meta.is_file():
            try:
                return str(json.loads(meta.read_text()).get("status", "partial"))
            except ValueError:
                return "partial"
        return "partial" if self.run_dir.exists() else "new"


# --------------------------------------------------------------------------------------------- parsing


def _as_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_as_str(x) for x in v) + "]"
    return str(v)


def _str_list(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = [x.strip() for x in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [_as_str(x).strip() for x in value]
    else:
        items = [_as_str(value)]
    items = [x for x in items if x]
    if len(set(items)) != len(items):
        raise UsageError(f"grid {key} lists a value twice: {items}")
    return items


def _seeds(value: Any) -> list[int]:
    out = []
    for s in _str_list("seeds", value):
        try:
            out.append(int(s))
        except ValueError:
            raise UsageError(f"grid seeds must be integers, got {s!r} (e.g. --seeds 0,1,2)") from None
    return out


def split_sweep(value: str) -> list[str]:
    """``"1e-4,3e-4"`` → two values; a bracketed or quoted value (a list) stays one value."""
    v = value.strip()
    if v.startswith(("[", "{", "'", '"')):
        return [v]
    parts = [p.strip() for p in v.split(",")]
    if any(not p for p in parts):
        raise UsageError(f"empty value in sweep {value!r}; write KEY=v1,v2")
    return parts


def parse_overrides(items: Sequence[str]) -> dict[str, list[str]]:
    """``["trainer.lr=1e-4,3e-4", "task=add"]`` → ``{"trainer.lr": ["1e-4", "3e-4"], "task": ["add"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"override {item!r} is not KEY=VALUE (a sweep is KEY=v1,v2)")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UsageError(f"override {item!r} has no key")
        out[key] = split_sweep(value)
    return out


def find_grid_file(ref: str) -> Path:
    """A path to a grid YAML, or the name of a preset in ``experiments/grid/``."""
    path = Path(ref)
    if path.is_file():
        return path
    presets = preset_names()
    name = path.stem if ref.endswith((".yaml", ".yml")) else ref
    if name in presets:
        return Path(str(resources.files("steerbench.experiments") / "grid" / f"{name}.yaml"))
    hint = difflib.get_close_matches(name, presets, n=1)
    raise UsageError(
        f"grid {ref!r} is neither a file nor a preset; presets: {', '.join(presets) or 'none'}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
    )


def preset_names() -> list[str]:
    folder = resources.files("steerbench.experiments") / "grid"
    try:
        return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def load_grid_yaml(path: Path) -> GridSpec:
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"grid file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"grid file {path} must be a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(raw) - set(GRID_KEYS))
    if unknown:
        hints = [difflib.get_close_matches(k, GRID_KEYS, n=1) for k in unknown]
        msg = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
            for k, h in zip(unknown, hints, strict=True)
        )
        raise UsageError(f"grid file {path}: unknown key {msg}; allowed keys: {', '.join(GRID_KEYS)}")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise UsageError(f"grid file {path}: overrides must be a mapping KEY: value or KEY: [v1, v2]")
    return GridSpec(
        name=str(raw.get("name") or Path(path).stem),
        methods=_str_list("methods", raw.get("methods")),
        scenarios=_str_list("scenarios", raw.get("scenarios", ["standard"])),
        seeds=_seeds(raw.get("seeds", [0])),
        method_seeds=_method_seeds(path, raw.get("method_seeds")),
        steps=_steps(raw.get("steps")),
        overrides={str(k): _str_list(f"override {k}", v) for k, v in overrides.items()},
        method_overrides=_method_overrides(path, raw.get("method_overrides")),
        description=str(raw.get("description") or ""),
        exclude=_str_list("exclude", raw.get("exclude")),
        design=_design(path, raw.get("design")),
    )


def _method_overrides(path: Path, raw: Any) -> dict[str, dict[str, list[str]]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UsageError(
            f"grid file {path}: method_overrides must map a method to {{KEY: value or [v1, v2]}}"
        )
    return {str(m): {str(k): _str_list(f"override {k}", v) for k, v in kv.items()} for m, kv in raw.items()}


def _method_seeds(path: Path, raw: Any) -> dict[str, list[int]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(
            f"grid file {path}: method_seeds must map a method to its seeds, e.g. {{grpo: [0, 1, 2]}}"
        )
    return {str(m): _seeds(v) for m, v in raw.items()}


def _design(path: Path, raw: Any) -> dict[str, Any]:
    """``design: {primary: <endpoint>, test: paired | welch, pilot: {<endpoint>: {sd: >0, effect: number}},
    source: text}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"primary", "test", "pilot", "source"}:
        raise UsageError(f"grid file {path}: design must be a mapping with keys primary, test, pilot, source")
    primary = raw.get("primary", ENDPOINTS[0])
    if primary not in ENDPOINTS:
        raise UsageError(f"grid file {path}: design.primary {primary!r} is not one of {', '.join(ENDPOINTS)}")
    test = raw.get("test", TESTS[0])
    if test not in TESTS:
        raise UsageError(f"grid file {path}: design.test {test!r} is not one of {', '.join(TESTS)}")
    pilot = raw.get("pilot") or {}
    for endpoint, entry in pilot.items():
        ok = endpoint in ENDPOINTS and isinstance(entry, dict) and set(entry) == {"sd", "effect"}
        if not ok or not all(isinstance(v, int | float) for v in entry.values()) or entry["sd"] <= 0:
            raise UsageError(
                f"grid file {path}: design.pilot.{endpoint} must be {{sd: > 0, effect: number}} "
                f"for an endpoint of {', '.join(ENDPOINTS)}"
            )
    return {"primary": primary, "test": test, "pilot": pilot, "source": str(raw.get("source", ""))}


def _steps(value: Any) -> int | None:
    if value is None:
        return None
    try:
        steps = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"grid steps must be a positive integer, got {value!r}") from None
    if steps < 1:
        raise UsageError(f"grid steps must be ≥ 1, got {steps}")
    return steps


def build_spec(
    grid: str | None = None,
    *,
    name: str | None = None,
    methods: str | None = None,
    scenarios: str | None = None,
    seeds: str | None = None,
    steps: int | None = None,
    exclude: str | None = None,
    overrides: Sequence[str] = (),
) -> GridSpec:
    """A GridSpec from an optional grid YAML/preset, with flags taking precedence."""
    spec = load_grid_yaml(find_grid_file(grid)) if grid else GridSpec()
    if name:
        spec.name = name
    if methods is not None:
        spec.methods = _str_list("methods", methods)
    if scenarios is not None:
        spec.scenarios = _str_list("scenarios", scenarios)
    if seeds is not None:  # every method on these seeds
        spec.seeds, spec.method_seeds = _seeds(seeds), {}
    if steps is not None:
        spec.steps = _steps(steps)
    if exclude is not None:
        spec.exclude = _str_list("exclude", exclude)
    spec.overrides.update(parse_overrides(overrides))
    for reserved in ("method", "scenario", "trainer.seed", "trainer.steps"):
        if reserved in spec.overrides:
            raise UsageError(
                f"set {reserved} with the grid's own field (methods/scenarios/seeds/steps), not as an override"
            )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.name):
        raise UsageError(f"grid name {spec.name!r} must be a plain folder name (letters, digits, . _ -)")
    if not spec.methods:
        raise UsageError("the grid has no methods: give --methods a,b or a grid file with methods: [...]")
    if not spec.scenarios or not spec.seeds:
        raise UsageError("the grid is empty: it needs at least one scenario and one seed")
    for method in spec.method_overrides:
        if method not in spec.methods:
            raise UsageError(
                f"grid method_overrides names {method!r}, which is not one of the grid's methods"
            )
    for key in spec.method_seeds:
        method, _, scenario = key.partition("/")
        if method not in spec.methods or (scenario and scenario not in spec.scenarios):
            raise UsageError(
                f"grid method_seeds names {key!r}, which is neither one of the grid's methods nor a "
                f"METHOD/SCENARIO pair of them (methods: {', '.join(spec.methods)}; scenarios: "
                f"{', '.join(spec.scenarios)})"
            )
    for pair in spec.exclude:
        method, _, scenario = pair.partition("/")
        if method not in spec.methods or scenario not in spec.scenarios:
            raise UsageError(
                f"grid exclude {pair!r} is not a METHOD/SCENARIO pair of the grid "
                f"(methods: {', '.join(spec.methods)}; scenarios: {', '.join(spec.scenarios)})"
            )
    return spec


# ----------------------------------------------------------------------------------------------- cells


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")


def expand(spec: GridSpec, grid_dir: Path) -> list[Cell]:
    """Every cell of the grid, its config composed and checked; raises UsageError before any launch."""

    cells: list[Cell] = []
    seen: dict[str, tuple[str, ...]] = {}
    for method, scenario, fixed, sweep, seed in _combinations(spec):
        if f"{method}/{scenario}" in spec.exclude:
            continue
        overrides = [f"method={method}", f"scenario={scenario}", f"trainer.seed={seed}"]
        if spec.steps is not None:
            overrides.append(f"trainer.steps={spec.steps}")
        overrides += fixed + sweep
        try:
            cfg = compose(overrides)
            if cfg.backend == "verl":  # a missing model or data file fails here, not in the first cell's job
                check_inputs(cfg, cfg.verl.launcher)
        except UsageError as exc:
            raise UsageError(f"grid cell {' '.join(overrides)}: {exc}") from None
        name = run_dir_name(cfg) + "".join(
            f"__{_slug(k.split('.')[-1])}={_slug(v)}" for k, _, v in (o.partition("=") for o in sweep)
        )
        if name in seen:
            raise UsageError(
                f"two grid cells map to the same folder {name!r}: {' '.join(seen[name])} and {' '.join(overrides)}"
            )
        seen[name] = tuple(overrides)
        cells.append(
            Cell(
                name=name,
                overrides=tuple(overrides),
                run_dir=grid_dir / name,
                method=method,
                scenario=scenario,
                seed=seed,
                variant=variant_of(sweep),
                config=flatten(to_dict(cfg)),
            )
        )
    if not cells:
        raise UsageError("the grid is empty")
    return cells


def family(spec: GridSpec, cells: Sequence[Cell]) -> dict[str, Any]:
    """The grid's multiple-testing family, fixed before any run: every method × scenario × variant other
    than grpo, tested on the primary endpoint against the grpo cell of the same scenario and variant —
    except a degenerate one, whose composed config equals that grpo cell's apart from ``method.name``
    (``steerbench.comparisons.same_config``), which is listed apart and tested by nobody."""
    controls = {(c.scenario, c.variant, c.seed): c.config for c in cells if c.method == CONTROL}
    members: list[str] = []
    degenerate: list[str] = []
    for method, scenario, variant in dict.fromkeys((c.method, c.scenario, c.variant) for c in cells):
        if method == CONTROL:
            continue
        label = f"{method}/{scenario}" + (f" [{variant}]" if variant else "")
        mine = [c for c in cells if (c.method, c.scenario, c.variant) == (method, scenario, variant)]
        twins = [same_config(c.config, controls.get((scenario, variant, c.seed), {})) for c in mine]
        (degenerate if all(twins) else members).append(label)
    primary = spec.design.get("primary", ENDPOINTS[0])
    return {
        "name": f"{spec.name}: {primary}",
        "primary": primary,
        "test": spec.design.get("test", TESTS[0]),
        "size": len(members),
        "members": members,
        "degenerate": degenerate,
    }


def _combinations(spec: GridSpec):
    """(method, scenario, fixed overrides, swept overrides, seed) of every cell, in grid order; a method's
    own ``method_overrides`` join the grid's overrides for its cells only."""
    for method in spec.methods:
        merged = {**spec.overrides, **spec.method_overrides.get(method, {})}
        fixed = [f"{k}={v[0]}" for k, v in sorted(merged.items()) if len(v) == 1]
        swept = sorted((k, v) for k, v in merged.items() if len(v) > 1)
        for scenario, combo in itertools.product(spec.scenarios, itertools.product(*[v for _, v in swept])):
            sweep = [f"{k}={v}" for (k, _), v in zip(swept, combo, strict=True)]
            for seed in spec.seeds_of(method, scenario):
                yield method, scenario, fixed, sweep, seed


def manifest(spec: GridSpec, cells: Sequence[Cell]) -> dict[str, Any]:
    return {
        "grid": spec.record(),
        "description": spec.description,
        "cells": {c.name: list(c.overrides) for c in cells},
        "design": {
            **spec.design,
            "family": family(spec, cells),
            "seeds": list(spec.seeds),
            **(
                {"method_seeds": {m: list(v) for m, v in spec.method_seeds.items()}}
                if spec.method_seeds
                else {}
            ),
        },
    }


def check_manifest(grid_dir: Path, spec: GridSpec, cells: Sequence[Cell], *, write: bool) -> None:
    """Refuse to run a different grid into a folder that holds one; write grid.json if ``write``.

    A grid may grow: if every recorded cell is still a cell, with the same overrides, the new cells (more
    seeds, methods or scenarios) join the folder and grid.json records the grown grid."""
    path = grid_dir / MANIFEST
    new = manifest(spec, cells)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise UsageError(f"{path} is not valid JSON; remove it or choose another --out") from None
        recorded = old.get("cells") or {}
        kept = all(new["cells"].get(name) == o for name, o in recorded.items())
        if recorded and kept and len(new["cells"]) > len(recorded):  # grows; the same cells keep their record
            if write:
                atomic_write_json(path, new)
            return
        if old.get("grid") != new["grid"] or old.get("cells") != new["cells"]:
            diff = sorted(
                k
                for k in set(old.get("grid", {})) | set(new["grid"])
                if old["grid"].get(k) != new["grid"].get(k)
            )
            raise UsageError(
                f"{grid_dir} holds a different grid (differs in: {', '.join(diff) or 'cells'}); "
                "it may only grow there (more seeds, methods or scenarios, every recorded cell as it was); "
                "re-run it with the same settings, or pick another --out or grid name"
            )
        return
    if write:
        atomic_write_json(path, new)


def plan(spec: GridSpec, out: Path | str = DEFAULT_OUT) -> tuple[Path, list[Cell]]:
    """Validate the grid and return its folder and cells (nothing is written)."""
    grid_dir = Path(out).resolve() / spec.name
    cells = expand(spec, grid_dir)
    check_manifest(grid_dir, spec, cells, write=False)
    return grid_dir, cells


def run_grid(
    spec: GridSpec,
    out: Path | str = DEFAULT_OUT,
    *,
    launcher: str = "local",
    jobs: int = 1,
    ray_address: str | None = None,
    slurm: dict[str, Any] | None = None,
    progress: bool = True,
    on_result=None,
) -> list[CellResult]:
    """Run every unfinished cell with the launcher; returns one result per cell (grid order)."""
    if jobs < 1:
        raise UsageError(f"--jobs must be ≥ 1, got {jobs}")
    if launcher not in cell_launchers.LAUNCHERS:
        raise UsageError(f"--launcher {launcher!r} is unknown; choose {', '.join(cell_launchers.LAUNCHERS)}")
    grid_dir, cells = plan(spec, out)

    ensure_writable(grid_dir, "--out")
    check_manifest(grid_dir, spec, cells, write=True)
    results: dict[str, CellResult] = {}
    todo = []
    for cell in cells:
        if cell.status() == "done":
            results[cell.name] = CellResult(cell.name, "skipped")
        else:
            todo.append(cell)
    if todo:
        run = cell_launchers.LAUNCHERS[launcher]
        kwargs: dict[str, Any] = {"jobs": jobs, "progress": progress, "on_result": on_result}
        if launcher == "ray":
            kwargs["address"] = ray_address
        if launcher == "slurm":
            kwargs["options"] = dict(slurm or {})
            kwargs["folder"] = grid_dir / ".submitit"
        for res in run(todo, **kwargs):
            results[res.name] = res
    return [results[c.name] for c in cells]
