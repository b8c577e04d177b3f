"""A second virtualenv holding only dbt, for the subprocess mode (``dbt_executable``).

Users whose dbt and Airflow dependencies conflict run dbt from another virtualenv; the tests prove
that with a real one. ``.venv-dbt-subprocess/`` is built by the fixture itself (a fresh machine has
nothing) with the same dbt-core / dbt-duckdb versions as ``.venv`` and reused while they match.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
VENV = REPO / ".venv-dbt-subprocess"
#: The repository's one uv overrides file (drops dbt-core-experimental-parser; see pyproject.toml).
OVERRIDES = REPO / "scripts" / "uv-overrides.txt"


class SubprocessVenvError(RuntimeError):
    """The dbt virtualenv could not be built (the message carries uv's output)."""


def _uv() -> str:
    for candidate in (REPO / ".tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise SubprocessVenvError("uv not found: run `make install-dev` (it installs a pinned uv into .tools/)")


def requirements() -> list[str]:
    """The same dbt versions as the Airflow venv, so results are comparable."""
    return [f"{name}=={metadata.version(name)}" for name in ("dbt-core", "dbt-duckdb", "dbt-postgres")]


def _digest() -> str:
    key = "\n".join([*requirements(), OVERRIDES.read_text(), f"{sys.version_info[:2]}"])
    return hashlib.sha256(key.encode()).hexdigest()


def _build(digest: str) -> None:
    marker = VENV / ".requirements-sha256"
    if (VENV / "bin" / "dbt").exists() and marker.exists() and marker.read_text() == digest:
        return
    uv = _uv()
    shutil.rmtree(VENV, ignore_errors=True)
    env = {**os.environ, "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    create = [uv, "venv", "--quiet", "--python", sys.executable, str(VENV)]
    subprocess.run(create, check=True, env=env, capture_output=True, timeout=120)
    install = [
        uv,
        "pip",
        "install",
        "--quiet",
        "--compile-bytecode",
        "--python",
        str(VENV / "bin" / "python"),
    ]
    install += ["--overrides", str(OVERRIDES), *requirements()]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SubprocessVenvError(f"installing the dbt subprocess venv failed:\n{proc.stderr[-4000:]}")
    marker.write_text(digest)


def ensure_dbt_venv() -> Path:
    """The ``dbt`` executable of ``.venv-dbt-subprocess/``, built under a lock (xdist workers share it)."""
    tag = hashlib.sha1(bytes(REPO)).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"adp-venv-dbt-subprocess-{tag}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build(_digest())
    return VENV / "bin" / "dbt"
