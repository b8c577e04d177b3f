"""One ``dbt ls`` for a render, in a child process that writes the render cache itself.

A cold parse of a big project (import dbt, install packages, parse) can take longer than the DAG
processor's import timeout (``dagbag_import_timeout``, 30 s by default), which interrupts the DAG
file. If dbt ran inside that process, its work would be lost and the next parse would start over,
forever. So dbt runs in a child in its own session: when the parse of the DAG file is interrupted
the child carries on and stores the manifest and the selection in the cache, and the next parse
finds them. A lock per output makes a second parse wait for the running child instead of
starting another dbt (the DAG processor never runs dbt twice for the same project state), and
the DAG processor's own process never imports dbt.

The request (profile env included) goes to the child in a 0600 file that the child deletes on
reading; dbt's warnings and errors, secrets redacted, go to ``<cache>/logs/<key>.log``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_dbt_provider.core.errors import DbtConfigurationError
from airflow_dbt_provider.core.selection import ProjectCache, Selection, store_listing

#: Resource types a render lists (``dbt ls --resource-type``).
LISTED_TYPES = ("seed", "model", "snapshot", "test")
#: An empty lock (the spawner has not written the child's pid yet) younger than this is live.
_EMPTY_LOCK_GRACE_S = 30.0
_POLL_S = 0.2


@dataclass
class ListRequest:
    """What the child needs: the operators' dbt arguments and where to store the answer."""

    project_dir: str
    cache_root: str
    manifest_out: str | None
    selection_key: str | None
    select: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    selector: str | None = None
    profiles_dir: str | None = None
    target: str | None = None
    vars: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    install_deps: bool = True
    #: A private profiles directory (from a connection) the child removes when done.
    cleanup_dir: str | None = None

    @property
    def name(self) -> str:
        """One name per output, for the lock and the log."""
        output = self.manifest_out or self.selection_key or ""
        return hashlib.sha256(output.encode()).hexdigest()[:24]


def list_in_child(request: ListRequest) -> None:
    """Run (or wait for) the ``dbt ls`` of ``request``; raise with dbt's errors if it failed."""
    root = Path(request.cache_root)
    lock = root / "locks" / f"{request.name}.lock"
    log_path = root / "logs" / f"{request.name}.log"
    lock.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if _acquire(lock):
        _spawn_and_wait(request, lock, log_path)
    else:
        _wait_released(lock)
    if not _produced(request):
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:] if log_path.is_file() else []
        raise DbtConfigurationError(
            f"dbt ls of {request.project_dir} failed; dbt said: {' | '.join(tail) or 'nothing'} "
            f"(full log: {log_path})"
        )


def _produced(request: ListRequest) -> bool:
    cache = ProjectCache(Path(request.cache_root))
    if request.manifest_out is not None:
        return Path(request.manifest_out).is_file()
    return request.selection_key is not None and cache.selection_path(request.selection_key).is_file()


def _acquire(lock: Path) -> bool:
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return True
        except FileExistsError:
            if not _stale(lock):
                return False
            lock.unlink(missing_ok=True)


def _stale(lock: Path) -> bool:
    try:
        text = lock.read_text().strip()
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False  # released meanwhile: the next _acquire attempt decides
    if not text:
        return age > _EMPTY_LOCK_GRACE_S
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _wait_released(lock: Path) -> None:
    while lock.exists() and not _stale(lock):
        time.sleep(_POLL_S)


def _spawn_and_wait(request: ListRequest, lock: Path, log_path: Path) -> None:
    private = Path(tempfile.mkdtemp(prefix="dbt-ls-request-"))  # 0700
    request_file = private / "request.json"
    fd = os.open(request_file, os.O_CREAT | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({**asdict(request), "lock": str(lock), "request_dir": str(private)}, out)
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "airflow_dbt_provider.core.list_nodes", str(request_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # survives the DAG processor interrupting this parse
        )
    lock.write_text(str(child.pid))
    child.wait()


def main(argv: list[str]) -> int:
    """The child: read and delete the request, run ``dbt ls``, store the answer, release the lock."""
    request_file = Path(argv[0])
    raw = json.loads(request_file.read_text())
    shutil.rmtree(raw.pop("request_dir"), ignore_errors=True)
    lock = Path(raw.pop("lock"))
    request = ListRequest(**raw)
    try:
        return _list(request)
    finally:
        if request.cleanup_dir:
            shutil.rmtree(request.cleanup_dir, ignore_errors=True)
        lock.unlink(missing_ok=True)


def _list(request: ListRequest) -> int:
    from airflow_dbt_provider.core.runner import DbtRunner

    logger = logging.getLogger("airflow_dbt_provider.dbt.ls")
    logger.setLevel(logging.WARNING)
    logger.addHandler(logging.StreamHandler(sys.stderr))
    words = ["ls", "--output", "json", "--output-keys", "unique_id"]
    for resource_type in LISTED_TYPES:
        words += ["--resource-type", resource_type]
    params: dict[str, Any] = {}
    if request.select:
        params["select"] = request.select
    if request.exclude:
        params["exclude"] = request.exclude
    if request.selector:
        params["selector"] = request.selector
    with DbtRunner(
        request.project_dir,
        profiles_dir=request.profiles_dir,
        target=request.target,
        vars=request.vars,
        env=request.env,
        secrets=request.secrets,
        logger=logger,
        install_deps=request.install_deps,
    ) as runner:
        result = runner.invoke(words, capture=("manifest.json",), **params)
    if not result.success or "manifest.json" not in result.captured:
        logger.error("dbt ls failed: %s", "; ".join(result.error_messages) or "no error message")
        return 1
    ids = [json.loads(line)["unique_id"] for line in result.output or ()]
    selection = Selection(tuple(request.select), tuple(request.exclude), request.selector)
    store_listing(
        ProjectCache(Path(request.cache_root)),
        selection,
        result.captured["manifest.json"],
        ids,
        manifest_out=Path(request.manifest_out) if request.manifest_out else None,
        key=request.selection_key,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
