"""``dbt deps`` without writing into the project directory.

dbt installs packages into ``<project>/<packages-install-path>`` and writes ``package-lock.yml``
next to ``dbt_project.yml``; dbt-core has no flag to move either. To keep the user's project
read-only we run dbt against a *mirror*: a directory whose entries are symlinks to the project's
own, except the package files (copied) and the install path (a real directory we own). Relative
``local:`` packages (``../utils``) resolve against the mirror, so the mirror sits deep enough for
them and a symlink stands in for each one.

Mirrors live in the cache directory, keyed by the project path and its package files, and are
published with an atomic rename after ``dbt deps`` succeeded: the first task installs, later
tasks (and concurrent ones that lose the race) reuse the finished mirror.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PACKAGE_FILES = ("packages.yml", "dependencies.yml")
LOCK_FILE = "package-lock.yml"
#: Project entries a mirror never links: dbt writes them, and they belong to the invocation.
_NOT_MIRRORED = frozenset({LOCK_FILE, "target", "logs", *PACKAGE_FILES})


def declared_packages(project_dir: Path) -> list[dict[str, Any]]:
    """The package specs a project declares in ``packages.yml`` or ``dependencies.yml``."""
    for name in PACKAGE_FILES:
        path = project_dir / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            packages = data.get("packages") or []
            if packages:
                return [p for p in packages if isinstance(p, dict)]
    return []


def packages_install_path(project_dir: Path) -> str:
    """The project's ``packages-install-path`` (``dbt_packages`` unless configured)."""
    data = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    return str(data.get("packages-install-path") or "dbt_packages")


def packages_installed(project_dir: Path) -> bool:
    """Whether the project's install path holds at least one entry per declared package."""
    packages = declared_packages(project_dir)
    if not packages:
        return True
    install_dir = project_dir / packages_install_path(project_dir)
    if not install_dir.is_dir():
        return False
    return sum(1 for entry in install_dir.iterdir() if entry.is_dir()) >= len(packages)


def mirror_with_packages(
    project_dir: Path, cache_root: Path, install: Callable[[Path], None], *, version: str = ""
) -> Path:
    """Return a mirror of ``project_dir`` with its packages installed, creating it if needed.

    ``install(mirror_dir)`` must run ``dbt deps`` with ``--project-dir mirror_dir`` and raise on
    failure; it runs at most once per key in the common case.
    """
    project_dir = project_dir.resolve()
    root = cache_root / "projects"
    final = root / _mirror_key(project_dir, version)
    depth = _parent_depth(project_dir)
    mirror = _nested(final, depth, project_dir.name)
    if (final / ".complete").is_file():
        return mirror
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staged_mirror = _nested(staging, depth, project_dir.name)
        _build_mirror(project_dir, staged_mirror)
        install(staged_mirror)
        _pin_symlinks(staged_mirror / packages_install_path(project_dir))
        (staging / ".complete").touch()
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return mirror


def _build_mirror(project_dir: Path, mirror: Path) -> None:
    mirror.mkdir(parents=True)
    install_path = packages_install_path(project_dir)
    for entry in project_dir.iterdir():
        if entry.name in _NOT_MIRRORED or entry.name == install_path:
            continue
        (mirror / entry.name).symlink_to(entry)
    for name in (*PACKAGE_FILES, LOCK_FILE):
        if (project_dir / name).is_file():
            shutil.copyfile(project_dir / name, mirror / name)
    for package in declared_packages(project_dir):
        local = package.get("local")
        if isinstance(local, str) and not os.path.isabs(local):
            _link_local_package(project_dir, mirror, local)


def _link_local_package(project_dir: Path, mirror: Path, local: str) -> None:
    """Make ``mirror/local`` point at ``project_dir/local`` (the mirror is nested deep enough)."""
    link = Path(os.path.normpath(mirror / local))
    if link.exists() or link.is_symlink():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to((project_dir / local).resolve())


def _pin_symlinks(install_dir: Path) -> None:
    """Re-point installed ``local:`` packages at their real paths.

    dbt links a local package through the mirror's own path, which is the staging directory
    until :func:`_publish` renames it; resolved targets keep the links valid after the rename.
    """
    if not install_dir.is_dir():
        return
    for entry in install_dir.iterdir():
        if entry.is_symlink():
            real = entry.resolve()
            entry.unlink()
            entry.symlink_to(real)


def _publish(staging: Path, final: Path) -> None:
    """Atomically move a finished mirror into place; a concurrent winner's copy is kept."""
    try:
        os.rename(staging, final)
    except OSError:
        if not (final / ".complete").is_file():
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)


def _parent_depth(project_dir: Path) -> int:
    """How many ``..`` levels the project's relative ``local:`` packages climb."""
    depth = 0
    for package in declared_packages(project_dir):
        local = package.get("local")
        if isinstance(local, str) and not os.path.isabs(local):
            parts = Path(os.path.normpath(local)).parts
            depth = max(depth, sum(1 for part in parts if part == ".."))
    return depth


def _nested(base: Path, depth: int, name: str) -> Path:
    return base.joinpath(*(["m"] * depth), name)


def _mirror_key(project_dir: Path, version: str) -> str:
    digest = hashlib.sha256(str(project_dir).encode())
    digest.update(version.encode())
    # The mirror links the project's top-level entries as they were: a new one needs a new mirror.
    digest.update("\0".join(sorted(entry.name for entry in project_dir.iterdir())).encode())
    for name in (*PACKAGE_FILES, LOCK_FILE, "dbt_project.yml"):
        path = project_dir / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return digest.hexdigest()[:24]
