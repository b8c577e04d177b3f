"""What ``dbt retry`` needs from a failed try, in a form small enough for a shared store.

On an Airflow retry the previous try's temporary target directory is gone (and may have been on
another worker), so the operator keeps this state in Airflow's task state store, which every
worker reaches through the API server. ``dbt retry`` reads only ``run_results.json``: the
original invocation's ``args`` (command, selection, vars) and the results whose status it
re-runs (error, fail, skipped, runtime error, partial success). :func:`retry_state` keeps
exactly that — successful results and compiled SQL are dropped — gzip-compressed, so even a
large project's failure fits the store's 64 KB default limit; :func:`write_run_results` puts it
back as a ``run_results.json`` for ``dbt retry --state``.

Airflow before 3.3 has no task state store; there :class:`ArtifactsDirStore` keeps the same state
as a file in the operator's ``artifacts_dir`` — which the user points at storage every try of the
task reaches (the same worker, a shared volume, or an object-storage URL) — tagged with the task
instance it belongs to.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, TypeGuard

#: The key the operators use in the task state store.
STATE_KEY = "dbt_retry_from_failure"
#: Bump when the stored shape changes; an unknown format is ignored (the try runs in full).
FORMAT = 1
#: Statuses ``dbt retry`` runs again (dbt's ``RETRYABLE_STATUSES``).
RETRYABLE_STATUSES = frozenset({"error", "fail", "skipped", "runtime error", "partial success"})
#: Commands ``dbt retry`` can repeat (dbt's ``TASK_DICT``; ``docs generate`` is ``generate`` there).
RETRYABLE_COMMANDS = frozenset(
    {"build", "compile", "clone", "docs generate", "seed", "snapshot", "test", "run", "run-operation"}
)
#: Characters of each kept node message (it is only shown, never used by ``dbt retry``).
MAX_MESSAGE = 500


def retry_state(run_results: bytes) -> dict[str, Any] | None:
    """The state to store after a try whose ``run_results.json`` is ``run_results``.

    ``None`` when nothing would be retried (every node succeeded), so callers delete the key.
    """
    data = json.loads(run_results)
    retryable = [item for item in data.get("results") or [] if item.get("status") in RETRYABLE_STATUSES]
    if not retryable:
        return None
    compact = {**data, "results": [_compact(item) for item in retryable]}
    blob = gzip.compress(json.dumps(compact, separators=(",", ":")).encode(), mtime=0)
    return {
        "format": FORMAT,
        "command": str((data.get("args") or {}).get("which") or ""),
        "retry_nodes": sorted(item["unique_id"] for item in retryable),
        "run_results_gzip_b64": base64.b64encode(blob).decode("ascii"),
    }


def usable(state: Any) -> TypeGuard[dict[str, Any]]:
    """Whether ``state`` (as read back from the store) is one this version can retry from."""
    return (
        isinstance(state, dict)
        and state.get("format") == FORMAT
        and isinstance(state.get("run_results_gzip_b64"), str)
        and bool(state.get("retry_nodes"))
    )


def write_run_results(state: dict[str, Any], directory: Path) -> Path:
    """Write the stored state back as ``directory/run_results.json`` (for ``--state directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "run_results.json"
    path.write_bytes(gzip.decompress(base64.b64decode(state["run_results_gzip_b64"])))
    return path


def _compact(item: dict[str, Any]) -> dict[str, Any]:
    """One result with the bulky fields ``dbt retry`` does not read emptied."""
    message = item.get("message")
    return {
        **item,
        "compiled_code": None,
        "adapter_response": {},
        "message": message[:MAX_MESSAGE] if isinstance(message, str) else message,
    }


class StateFiles(Protocol):
    """Where :class:`ArtifactsDirStore` keeps its files: a local directory, or object storage
    (the Airflow side's ``ObjectStorageStateFiles``, for an ``artifacts_dir`` URL)."""

    def read(self, name: str) -> str | None:
        """The file's text, or ``None`` when there is no such file."""

    def write(self, name: str, text: str) -> None:
        """Replace the file's content as a whole (a reader never sees half of it)."""

    def remove(self, name: str) -> None:
        """Delete the file; no error when it is absent."""


class LocalStateFiles:
    """:class:`StateFiles` in a local directory; writes go through a temporary file and a rename."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def read(self, name: str) -> str | None:
        try:
            return (self.directory / name).read_text()
        except FileNotFoundError:
            return None

    def write(self, name: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f"{name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.directory / name)

    def remove(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class ArtifactsDirStore:
    """The task state store's ``get``/``set``/``delete`` on a file in ``artifacts_dir``.

    Why the owner tag: ``artifacts_dir`` is often one fixed path for every run of a DAG, so the
    file names the task instance (dag, run, task, map index) it was written for, and another task
    instance reads nothing from it. Writes replace the file as a whole (a rename locally, one PUT
    on object storage), so a killed try leaves either the old state or the new one.

    :param directory: the local ``artifacts_dir``, or the :class:`StateFiles` to keep the file in.
    """

    def __init__(self, directory: str | os.PathLike[str] | StateFiles, owner: str) -> None:
        self.files: StateFiles = (
            LocalStateFiles(directory) if isinstance(directory, (str, os.PathLike)) else directory
        )
        self.owner = owner

    @staticmethod
    def _name(key: str) -> str:
        return f".{key}.json"

    def get(self, key: str) -> Any:
        """The stored value, or ``None`` when absent, unreadable, or another task instance's."""
        try:
            text = self.files.read(self._name(key))
            data = json.loads(text) if text is not None else None
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("owner") != self.owner:
            return None
        return data.get("value")

    def set(self, key: str, value: Any) -> None:
        self.files.write(self._name(key), json.dumps({"owner": self.owner, "value": value}))

    def delete(self, key: str) -> None:
        """Forget this task instance's value (another task instance's file is left alone)."""
        if self.get(key) is not None:
            self.files.remove(self._name(key))
