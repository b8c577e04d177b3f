"""``dbt deps`` without writing into the project directory.

dbt installs packages into ``<project>/<packages-install-path>`` and writes ``package-lock.yml``
next to ``dbt_project.yml``; dbt-core has no flag to move either. To keep the user's project
read-only we run dbt against a *mirror*: a directory whose entries are symlinks to the project's
own, except the package files (copied) and the install path (a real directory we own).

dbt resolves a relative ``local:`` package (``../utils``, or ``../`` in a package's own
``integration_tests`` project) lexically against the project directory it is given, i.e. the
mirror. So every such path must lead, inside the mirror's tree, to what it leads to next to the
real project: the mirror sits as deep as the paths climb, under directories named like the real
ancestors, and each path gets symlinks to the real entries it reaches (all of an ancestor's
entries when the package *is* that ancestor). The package files stay byte-identical, so a
``package-lock.yml`` stays valid. A path that leads to no dbt project is reported, naming the
entry and the real path it resolved to.

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

from airflow_dbt_provider.core.errors import DbtConfigurationError

PACKAGE_FILES = ("packages.yml", "dependencies.yml")
LOCK_FILE = "package-lock.yml"
#: Project entries a mirror never links: dbt writes them, and they belong to the invocation.
_NOT_MIRRORED = frozenset({LOCK_FILE, "target", "logs", *PACKAGE_FILES})


def declared_packages(project_dir: Path) -> list[dict[str, Any]]:
    """The package specs a project declares in ``packages.yml`` or ``dependencies.yml``."""
    return _package_file(project_dir)[1]


def _package_file(project_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The file that declares the project's packages, and its package specs."""
    for name in PACKAGE_FILES:
        path = project_dir / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            packages = data.get("packages") or []
            if packages:
                return name, [p for p in packages if isinstance(p, dict)]
    return PACKAGE_FILES[0], []


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
    locals_ = _local_paths(project_dir)
    depth = max((_climb(local) for local in locals_), default=0)
    mirror = _nested(final, project_dir, depth)
    if (final / ".complete").is_file():
        return mirror
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staged_mirror = _nested(staging, project_dir, depth)
        _build_mirror(project_dir, staged_mirror, locals_)
        install(staged_mirror)
        install_dir = staged_mirror / packages_install_path(project_dir)
        _pin_symlinks(install_dir, staging, staged_mirror, project_dir)
        (staging / ".complete").touch()
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return mirror


def _build_mirror(project_dir: Path, mirror: Path, locals_: list[str]) -> None:
    mirror.mkdir(parents=True)
    install_path = packages_install_path(project_dir)
    for entry in project_dir.iterdir():
        if entry.name in _NOT_MIRRORED or entry.name == install_path:
            continue
        (mirror / entry.name).symlink_to(entry)
    for name in (*PACKAGE_FILES, LOCK_FILE):
        if (project_dir / name).is_file():
            shutil.copyfile(project_dir / name, mirror / name)
    for local in locals_:
        if not os.path.isabs(local):
            _link_local_package(project_dir, mirror, local)


def _local_paths(project_dir: Path) -> list[str]:
    """The project's ``local:`` package paths, each checked to lead to a dbt project.

    dbt resolves a relative path against the project directory; so do we, against the real
    one, and report an entry that leads nowhere in the user's terms (the file, the entry, the
    real path) rather than as the mirror's path dbt would name. Paths dbt renders
    (``{{ env_var(...) }}``) are left to dbt.
    """
    file_name, packages = _package_file(project_dir)
    paths: list[str] = []
    for package in packages:
        local = package.get("local")
        if not isinstance(local, str) or "{{" in local:
            continue
        real = Path(os.path.normpath(project_dir / os.path.expanduser(local)))
        if not (real / "dbt_project.yml").is_file():
            found = "does not exist" if not real.exists() else "has no dbt_project.yml"
            raise DbtConfigurationError(
                f"{file_name} entry `local: {local}` resolves to {real}, which {found}. install_deps "
                f"resolves relative local: paths against the project directory {project_dir}, as "
                f"dbt deps does; fix the path in {project_dir / file_name}"
            )
        paths.append(local)
    return paths


def _link_local_package(project_dir: Path, mirror: Path, local: str) -> None:
    """Make ``mirror/local`` lead to what ``project_dir/local`` is, with symlinks to real entries.

    The walk starts at the ancestor of the mirror that ``local`` climbs to (it corresponds to the
    same ancestor of the project) and goes down ``local``'s remaining parts: through the mirror's
    own chain of directories while the path follows it, then one symlink to the real entry. A
    path that ends on a chain directory (``local: ../``: the package is the project's parent)
    gets that directory filled with symlinks to the real ancestor's entries.
    """
    parts = Path(os.path.normpath(local)).parts
    up = _climb(local)
    staged, real = mirror, project_dir
    for _ in range(up):
        staged, real = staged.parent, real.parent
    for part in parts[up:]:
        staged, real = staged / part, real / part
        if staged.is_symlink():
            return  # already leads to the real entry (and so does everything below it)
        if not staged.exists():
            staged.symlink_to(real.resolve())
            return
    if staged != mirror:
        _fill_with_links(staged, real)


def _fill_with_links(staged: Path, real: Path) -> None:
    """Give a chain directory of the mirror a symlink to each entry of its real counterpart."""
    for entry in real.iterdir():
        link = staged / entry.name
        if not (link.exists() or link.is_symlink()):
            link.symlink_to(entry.resolve())


def _pin_symlinks(install_dir: Path, staging: Path, mirror: Path, project_dir: Path) -> None:
    """Re-point installed ``local:`` packages at their real paths.

    dbt links a local package through the mirror's own path, which is the staging directory
    until :func:`_publish` renames it; real targets keep the links valid after the rename. A
    package that resolves to a directory of the mirror's own chain (``local: ../``) is the same
    place relative to the real project.
    """
    if not install_dir.is_dir():
        return
    staging, mirror = staging.resolve(), mirror.resolve()
    for entry in install_dir.iterdir():
        if entry.is_symlink():
            real = entry.resolve()
            if real.is_relative_to(staging):
                real = Path(os.path.normpath(project_dir / os.path.relpath(real, mirror))).resolve()
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


def _climb(local: str) -> int:
    """How many ``..`` levels a (normalised) relative path climbs above the project."""
    if os.path.isabs(local):
        return 0
    return sum(1 for part in Path(os.path.normpath(local)).parts if part == "..")


def _nested(base: Path, project_dir: Path, depth: int) -> Path:
    """Where the mirror sits under ``base``: below ``depth`` directories named like the project's
    ancestors, so a path climbing ``depth`` levels stays inside ``base``."""
    names = [project_dir.name, *(parent.name or "root" for parent in project_dir.parents)]
    names += ["root"] * (depth + 1 - len(names))
    return base.joinpath("m", *reversed(names[: depth + 1]))


def _mirror_key(project_dir: Path, version: str) -> str:
    digest = hashlib.sha256(str(project_dir).encode())
    digest.update(version.encode())
    digest.update(b"layout 2")  # mirrors nest under the ancestors' names since issue 14
    # The mirror links the project's top-level entries as they were: a new one needs a new mirror.
    digest.update("\0".join(sorted(entry.name for entry in project_dir.iterdir())).encode())
    for name in (*PACKAGE_FILES, LOCK_FILE, "dbt_project.yml"):
        path = project_dir / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return digest.hexdigest()[:24]
