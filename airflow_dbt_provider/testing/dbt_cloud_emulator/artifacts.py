"""Artifact payloads served by run steps: the packaged real-dbt artifacts, files, or inline JSON.

The default world's ``manifest.json``/``run_results.json`` were produced by really running dbt on
the example project (``scripts/generate_emulator_artifacts.py``) and ship gzipped as package data.
They are decompressed on first use and cached, so serving them costs nothing per request.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

BUILTIN_ARTIFACTS = ("success/manifest.json", "success/run_results.json", "fail/manifest.json",
                     "fail/run_results.json")  # fmt: skip


def _package_dir() -> Any:
    return resources.files("airflow_dbt_provider.testing").joinpath("emulator_artifacts")


@functools.cache
def builtin_artifact(name: str) -> bytes:
    """The decompressed bytes of a packaged artifact such as ``"success/manifest.json"``."""
    if name not in BUILTIN_ARTIFACTS:
        raise KeyError(name)
    return gzip.decompress(_package_dir().joinpath(f"{name}.gz").read_bytes())


@functools.cache
def builtin_log(outcome: str) -> str:
    """The console output of the real ``dbt build`` behind the ``success`` or ``fail`` artifacts."""
    return str(_package_dir().joinpath(outcome, "build.log").read_text())


FINGERPRINT_FILE = "source_fingerprint.txt"
_SOURCE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".md", ".py")
_SKIPPED_DIRS = {"target", "logs", "dbt_packages", "__pycache__"}
_SKIPPED_FILES = {"package-lock.yml", ".user.yml"}


def project_fingerprint(*roots: Path) -> str:
    """A SHA-256 over the dbt project sources under ``roots`` (paths and contents, build output skipped).

    The generator stores it next to the artifacts; a test recomputes it, so editing the example
    project without regenerating the artifacts fails fast instead of serving stale manifests.
    """
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or path.suffix not in _SOURCE_SUFFIXES or path.name in _SKIPPED_FILES:
                continue
            if _SKIPPED_DIRS.intersection(rel.parts):
                continue
            digest.update(f"{root.name}/{rel.as_posix()}\0".encode())
            digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
            digest.update(b"\0")
    return digest.hexdigest()


def shipped_fingerprint() -> str:
    """The fingerprint of the example project the packaged artifacts were generated from."""
    return str(_package_dir().joinpath(FINGERPRINT_FILE).read_text()).strip()


def _content_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith((".csv", ".txt", ".log", ".sql", ".md")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


@dataclass(frozen=True)
class ArtifactSource:
    """Where a step's artifact comes from: exactly one of ``builtin``, ``file`` or ``content``."""

    builtin: str | None = None
    file: Path | None = None
    content: Any = None

    @classmethod
    def parse(cls, spec: Any, where: str, base: Path | None, error: type[ValueError]) -> ArtifactSource:
        """Validate a config entry (``{"builtin": ...}``, ``{"file": ...}`` or ``{"content": ...}``)."""
        if (
            not isinstance(spec, dict)
            or len(spec) != 1
            or next(iter(spec)) not in ("builtin", "file", "content")
        ):
            raise error(
                f'{where} must be an object with exactly one of "builtin" '
                f"(one of {list(BUILTIN_ARTIFACTS)}), "
                '"file" (a path, relative to the config file) or "content" (inline JSON or text)'
            )
        if "builtin" in spec:
            if spec["builtin"] not in BUILTIN_ARTIFACTS:
                raise error(
                    f"{where}.builtin must be one of {list(BUILTIN_ARTIFACTS)}, got {spec['builtin']!r}"
                )
            return cls(builtin=spec["builtin"])
        if "file" in spec:
            if not isinstance(spec["file"], str):
                raise error(f"{where}.file must be a path string")
            path = Path(spec["file"])
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                raise error(f"{where}.file {str(path)!r} does not exist")
            return cls(file=path)
        return cls(content=spec["content"])

    def load(self, name: str) -> tuple[bytes, str]:
        """The artifact's bytes and content type, as the artifact endpoint serves them."""
        if self.builtin is not None:
            return builtin_artifact(self.builtin), "application/json"
        if self.file is not None:
            return self.file.read_bytes(), _content_type(name)
        if isinstance(self.content, str):
            return self.content.encode(), _content_type(name)
        return json.dumps(self.content).encode(), "application/json"
