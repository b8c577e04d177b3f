"""Make the repo's ``benchmarks`` package importable without putting the repo root on ``sys.path``.

The repo root on ``sys.path`` would let the source tree shadow the installed wheel for the whole
session, which ``make test`` forbids; so only the ``benchmarks`` package is loaded, by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_benchmarks_package() -> None:
    if "benchmarks" in sys.modules:
        return
    init = REPO / "benchmarks" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "benchmarks", init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = module
    spec.loader.exec_module(module)


_load_benchmarks_package()
