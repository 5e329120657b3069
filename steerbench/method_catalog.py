"""The method registry as plain data, readable without importing torch (for ``steerbench methods``).

``method_catalog.json`` beside this file holds each method's name, kind, knobs with their defaults
(clipping apart: the scenario's, but for the clipping a method owns), needs, formula and source
exactly as ``steerbench.methods.REGISTRY`` gives them, and a digest of the
``methods/`` sources it was made from. ``rows()`` serves the file while that digest matches the
installed sources and otherwise asks the live registry (importing torch): a stale catalogue is slow,
never wrong. After editing ``methods/``, regenerate it (tests/test_imports.py fails until you do)::

    python -m steerbench.method_catalog
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("method_catalog.json")


def sources_digest() -> str:
    """sha256 over the names and bytes of the ``steerbench.methods`` sources, without importing them."""
    spec = importlib.util.find_spec("steerbench.methods")
    assert spec is not None and spec.submodule_search_locations, "steerbench.methods is not installed"
    folder = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def live_rows() -> list[dict[str, Any]]:
    """One row per registered method, by name; knobs in the config dataclass's field order."""
    from steerbench.clipping import CLIP_KNOBS
    from steerbench.methods import REGISTRY

    return [
        {
            "name": spec.name,
            "kind": spec.kind,
            "knobs": {k: v for k, v in spec.knobs().items() if k not in CLIP_KNOBS},
            "own_clipping": {k: spec.knobs()[k] for k in spec.own_clipping},
            "needs": list(spec.needs),
            "summary": spec.summary,
            "source": spec.source,
        }
        for spec in sorted(REGISTRY.values(), key=lambda s: s.name)
    ]


def rows(catalog: Path = CATALOG) -> list[dict[str, Any]]:
    """The catalogue's rows if it was made from the installed sources, else the live registry's."""
    try:
        stored = json.loads(catalog.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return live_rows()
    if not isinstance(stored, dict) or stored.get("sources") != sources_digest():
        return live_rows()
    return list(stored["methods"])


def write(catalog: Path = CATALOG) -> Path:
    text = json.dumps({"sources": sources_digest(), "methods": live_rows()}, indent=2, ensure_ascii=False)
    catalog.write_text(text + "\n", encoding="utf-8")
    return catalog


if __name__ == "__main__":
    print(f"wrote {write()}")
