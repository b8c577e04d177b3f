"""The dbt runner (``core/``) and the dbt Cloud client (``cloud/``) import no Airflow.

Why: both are usable (and tested) without Airflow, and the DAG processor pays for what a DAG file
imports; an Airflow import creeping into them would couple the layers the design keeps apart.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PACKAGES = ("airflow_dbt_provider.core", "airflow_dbt_provider.cloud")


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_no_airflow(package: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'airflow' or n.startswith('airflow.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{package} imports Airflow modules: {out.stdout.strip()}"
