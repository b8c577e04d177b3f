"""The ``.bench/venv`` virtualenv: the anchors we compare against, beside our package.

The anchors must never enter the project's ``.venv``, yet every arm has to run on the same Airflow,
dbt-core and dbt-duckdb, so this venv is pinned to the versions installed in ``.venv``. Each anchor
is installed on its own: one that does not resolve beside Airflow 3.3 is recorded with the
resolver's reason and its arms are reported as unavailable, instead of breaking the whole run.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.paths import BENCH_DIR, BENCH_VENV, PROJECT_VENV, REPO, UV

#: dbt-postgres and asyncpg (Airflow's async PostgreSQL driver) for the deployment benchmark on PostgreSQL.
PINNED = ("apache-airflow", "dbt-core", "dbt-duckdb", "dbt-postgres", "asyncpg")
#: Anchor distribution -> the module whose import proves it is usable.
ANCHORS = {
    "apache-airflow-providers-dbt-cloud": "airflow.providers.dbt.cloud.triggers.dbt",
    "astronomer-cosmos": "cosmos.operators.local",
    "airflow-dbt-python": "airflow_dbt_python.operators.dbt",
}
#: The repository's one uv overrides file (drops dbt-core-experimental-parser; see pyproject.toml).
OVERRIDES = REPO / "scripts" / "uv-overrides.txt"
INSTALL_TIMEOUT_S = 1200


@dataclass
class AnchorStatus:
    distribution: str
    installed: bool
    version: str | None
    reason: str | None


def pinned_versions() -> dict[str, str]:
    """The versions of Airflow, dbt-core and dbt-duckdb in the project's ``.venv``."""
    out = _run([str(PROJECT_VENV / "bin" / "python"), "-c", _VERSIONS_SNIPPET, *PINNED], check=True)
    return json.loads(out.stdout)


_VERSIONS_SNIPPET = (
    "import importlib.metadata as m, json, sys; print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
)


def bench_python() -> Path:
    return BENCH_VENV / "bin" / "python"


def ensure_bench_venv(*, anchors: bool = True) -> dict[str, object]:
    """Create or update ``.bench/venv`` and return what it holds (versions, anchor status)."""
    pins = pinned_versions()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    overrides = OVERRIDES
    constraints = BENCH_DIR / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    if not bench_python().exists():
        _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(BENCH_VENV)], check=True)
    common = [
        str(UV), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(bench_python()),
        "--overrides", str(overrides), "--constraints", str(constraints),
    ]  # fmt: skip
    base = [f"{name}=={version}" for name, version in pins.items()]
    _run([*common, *base, "matplotlib"], check=True)
    _run([*common, "--no-deps", "--reinstall", str(_our_package())], check=True)
    statuses = [_install_anchor(common, dist) for dist in ANCHORS] if anchors else []
    return {
        "pinned": pins,
        "our_package": "built from the source tree",
        "anchors": {status.distribution: asdict(status) for status in statuses},
    }


def anchor_statuses_without_install() -> dict[str, dict[str, object]]:
    """What a venv that was not (re)built holds: used by ``--skip-install`` and the smoke tests."""
    return {dist: asdict(_probe(dist)) for dist in ANCHORS}


def _our_package() -> Path:
    """The source tree, built into a wheel by uv: always the code being benchmarked, never a stale
    ``dist/`` wheel."""
    return REPO


def _install_anchor(common: list[str], dist: str) -> AnchorStatus:
    result = _run([*common, dist], check=False)
    if result.returncode != 0:
        reason = _last_lines(result.stderr or result.stdout)
        return AnchorStatus(dist, installed=False, version=None, reason=f"does not install: {reason}")
    return _probe(dist)


def _probe(dist: str, python: Path | None = None) -> AnchorStatus:
    """Installed and importable in the bench venv? The import catches a wheel that installs but breaks."""
    snippet = (
        "import importlib, importlib.metadata as m, sys; importlib.import_module(sys.argv[2]); "
        "print(m.version(sys.argv[1]))"
    )
    python = python or bench_python()
    if not python.exists():
        return AnchorStatus(dist, installed=False, version=None, reason="bench venv not created")
    result = _run([str(python), "-c", snippet, dist, ANCHORS[dist]], check=False)
    if result.returncode != 0:
        reason = _last_lines(result.stderr)
        return AnchorStatus(dist, installed=False, version=None, reason=f"does not import: {reason}")
    version = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else None
    return AnchorStatus(dist, installed=True, version=version, reason=None)


def installed_versions(python: Path) -> dict[str, str]:
    """Versions of everything that shapes a figure, as installed in the venv of ``python``."""
    names = [*PINNED, "dbt-adapters", "duckdb", "aiohttp", "h11", "airflow-dbt-provider", *ANCHORS]
    snippet = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    result = _run([str(python), "-c", snippet, *names], check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def this_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _last_lines(text: str, n: int = 6) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "no output"


def _run(command: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, cwd=REPO, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"command failed ({result.returncode}): {' '.join(command)}\n{_last_lines(result.stderr, 20)}"
        )
    return result
