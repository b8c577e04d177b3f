"""Print our declared version floors as exact pins, for the minimum-versions test lane.

Why: pyproject declares floors below some of the versions uv.lock resolves (so the provider installs
beside Airflow's own constraints); ``make test`` therefore also installs exactly those floors into
``.venv-min`` and runs the suites that exercise them. A floor that stops working fails CI.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXTRAS = ("dbt", "duckdb", "postgres", "openlineage")
FLOOR = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(pyproject: Path) -> dict[str, str]:
    """``name -> floor`` for every runtime and extra requirement that declares one."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    for name, version in sorted(floors(root / "pyproject.toml").items()):
        sys.stdout.write(f"{name}=={version}\n")
