"""Refresh the locks: resolve anew, say which packages moved, run the suite on the new lock, keep it if green.

    python requirements/refresh.py            # resolve, diff, test in a fresh venv, write the locks if green
    python requirements/refresh.py --diff     # resolve and diff only; the locks are left as they are
    python requirements/refresh.py --no-test  # resolve, diff and write without the suite (run it yourself)
    python requirements/refresh.py -- -m "not slow"   # pytest arguments after --

The locks pin every transitive package with its hashes for what the README's two commands install, on
CPython 3.11, x86_64 Linux, the CPU torch wheel: `run.txt` (`pip install -e .`, what `steerbench run` needs)
and `test.txt` (the `dev` and `verl` extras). `run.txt` is resolved inside `test.txt`, so installing the
second after the first moves nothing. torch itself is left out (its dependencies are in): the README
installs `torch==TORCH` first, pinned, so pip never picks the multi-GB CUDA build. The resolver is
uv's `pip compile` at a pinned version, installed into a scratch venv.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"test": ["--extra", "dev", "--extra", "verl"], "run": []}  # test first: run resolves inside it
TORCH = "2.13.0"
UV = "uv==0.13.9"
TARGET = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
# where the CPU wheel of torch is found: a local folder of wheels if it has one, else PyTorch's CPU index
TORCH_WHEELS = Path(os.environ.get("STEERBENCH_TORCH_WHEELS", "/opt/wheels"))


def pins(lock: Path) -> dict[str, str]:
    """package name → pinned version in a lock file."""
    if not lock.exists():
        return {}
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", lock.read_text(), flags=re.M)
    return {name.lower(): version for name, version in found}


def moved(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One line per package added, removed or moved between two locks."""
    lines = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before != after:
            lines.append(f"  {name}: {before or '(absent)'} -> {after or '(removed)'}")
    return lines


def run(cmd: list[str | Path], **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def compile_locks(scratch: Path) -> dict[str, Path]:
    tools = scratch / "uv-venv"
    venv.create(tools, with_pip=True)
    run([tools / "bin" / "pip", "install", "-q", UV])
    uv = tools / "bin" / "uv"
    torch_pin = scratch / "torch-constraint.txt"
    torch_pin.write_text(f"torch=={TORCH}+cpu\n")
    if any(TORCH_WHEELS.glob(f"torch-{TORCH}+cpu-*.whl")):
        source = ["--find-links", str(TORCH_WHEELS)]
    else:
        source = [
            "--extra-index-url",
            "https://download.pytorch.org/whl/cpu",
            "--index-strategy",
            "unsafe-best-match",
        ]
    common = [*TARGET, *source, "-c", str(torch_pin), "--generate-hashes", "--no-emit-package", "torch",
              "--custom-compile-command", "python requirements/refresh.py", "--no-emit-index-url", "--no-emit-find-links"]  # fmt: skip
    out: dict[str, Path] = {}
    for name, extras in LOCKS.items():
        inside = ["-c", str(out["test"])] if name == "run" else []
        out[name] = scratch / f"{name}.txt"
        run(
            [uv, "pip", "compile", ROOT / "pyproject.toml", *extras, *common, *inside, "-o", out[name]],
            cwd=ROOT,
        )
    return out


def test_lock(lock: Path, scratch: Path, pytest_args: list[str]) -> bool:
    """The README's install on the new lock, in a fresh venv, then the suite."""
    env_dir = scratch / "venv"
    venv.create(env_dir, with_pip=True)
    pip, python = env_dir / "bin" / "pip", env_dir / "bin" / "python"
    run([pip, "install", "-q", f"torch=={TORCH}"])
    run([pip, "install", "-q", "--require-hashes", "-r", lock])
    run([pip, "install", "-q", "--no-deps", "-e", ROOT])
    env = {**os.environ, "STEERBENCH_CACHE": str(scratch / "cache")}
    return (
        subprocess.run([str(python), "-m", "pytest", "-q", *pytest_args], cwd=ROOT, env=env).returncode == 0
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--diff", action="store_true", help="resolve and diff only; keep the current locks")
    parser.add_argument(
        "--no-test", action="store_true", help="write the new locks without running the suite"
    )
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="steerbench-lock-") as tmp:
        scratch = Path(tmp)
        new = compile_locks(scratch)
        for name, path in new.items():
            lines = moved(pins(ROOT / "requirements" / f"{name}.txt"), pins(path))
            print(f"\n{name}.txt: {len(lines)} package(s) moved" + (":" if lines else ""))
            print("\n".join(lines))
        if args.diff:
            return 0
        if not args.no_test and not test_lock(new["test"], scratch, args.pytest_args):
            print("\nthe suite failed on the new lock; requirements/ left as it was", file=sys.stderr)
            return 1
        for name, path in new.items():
            shutil.copyfile(path, ROOT / "requirements" / f"{name}.txt")
        tested = "not tested (--no-test)" if args.no_test else "the suite passed on it"
        print(f"\nrequirements/run.txt and test.txt updated; {tested}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
