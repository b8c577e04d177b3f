"""The separate adapters venv for profile tests, and the call into it.

Why a separate venv: dbt-snowflake, dbt-bigquery, dbt-redshift, dbt-databricks and dbt-trino do not
fit in one resolution with the main ``.venv`` (Airflow's pins), yet each generated target must be
checked by that adapter's own credentials class. ``.venv-adapters/`` is built once from the pinned
``tests/profiles/adapters-requirements.txt`` and reused while the requirements' hash matches.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PROFILE_TESTS = REPO / "tests" / "profiles"
ADAPTERS_VENV = REPO / ".venv-adapters"
REQUIREMENTS = PROFILE_TESTS / "adapters-requirements.txt"
#: The repository's one uv overrides file (drops dbt-core-experimental-parser; see pyproject.toml).
OVERRIDES = REPO / "scripts" / "uv-overrides.txt"
CHECK_SCRIPT = PROFILE_TESTS / "adapters_check.py"


class AdaptersVenvError(RuntimeError):
    """The adapters venv could not be built (the message carries uv's output)."""


@dataclass(frozen=True)
class KeyPair:
    """A fresh RSA key in the encodings connections carry it in."""

    pem: str  # unencrypted PKCS#8 PEM
    encrypted_pem: str  # PEM encrypted with ``passphrase``
    passphrase: str


def _uv() -> str:
    for candidate in (REPO / ".tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise AdaptersVenvError("uv not found: run `make install-dev` (it installs a pinned uv into .tools/)")


def _requirements_digest() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, OVERRIDES):
        digest.update(path.read_bytes())
    digest.update(f"{sys.version_info[:2]}".encode())
    return digest.hexdigest()


def _build(uv: str, digest: str) -> None:
    marker = ADAPTERS_VENV / ".requirements-sha256"
    python = ADAPTERS_VENV / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text() == digest:
        return
    shutil.rmtree(ADAPTERS_VENV, ignore_errors=True)
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    create = [uv, "venv", "--quiet", "--python", sys.executable, str(ADAPTERS_VENV)]
    subprocess.run(create, check=True, env=env, capture_output=True, timeout=120)
    # No --compile-bytecode: compiling all ~850 MB up front took 110-145 s on a loaded 2-core box,
    # against 7 s without; Python writes .pyc for just the modules the check imports, once.
    install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    install += ["--overrides", str(OVERRIDES), "-r", str(REQUIREMENTS)]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AdaptersVenvError(f"installing the adapters venv failed:\n{proc.stderr[-4000:]}")
    marker.write_text(digest)


def ensure_adapters_venv() -> Path:
    """The Python of ``.venv-adapters/``, created or refreshed under a lock (xdist workers share it)."""
    digest = _requirements_digest()
    tag = hashlib.sha1(bytes(REPO)).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"adp-venv-adapters-{tag}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _build(_uv(), digest)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return ADAPTERS_VENV / "bin" / "python"


def check_in_adapters_venv(python: Path, cases: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Validate targets with the adapters' credentials classes in the adapters venv, by case name.

    Each case is ``{"name", "profile_name", "target_name", "output", "env"}``. The script imports
    our ``profiles`` package from the source tree (it needs only PyYAML and dbt).
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "DO_NOT_TRACK": "1"}
    env.pop("VIRTUAL_ENV", None)
    with tempfile.TemporaryDirectory(prefix="adp-adapters-check-") as tmp:
        out = Path(tmp) / "results.json"
        proc = subprocess.run(
            [str(python), str(CHECK_SCRIPT), str(out)],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
        assert proc.returncode == 0, f"adapters_check.py failed:\n{proc.stderr[-4000:]}"
        return {item["name"]: item for item in json.loads(out.read_text())}
