"""``artifacts_dir`` on object storage: artifacts and ``dbt.log`` uploaded when the task ends.

dbt writes its artifacts to a local target path, so the runner keeps them in a local staging
directory as it does for a local ``artifacts_dir``; :class:`ArtifactsUpload` copies that
directory to the URL once, when the task ends — after success, after failure, and on the way out
of a timed-out or killed task (``execute``'s ``finally``, which Airflow's timeout exception and
the kill's interrupt both pass through). Why not upload after every invocation: one task's
invocations overwrite the same names, and the last word is what a later task (or a person
reading ``dbt.log``) wants.

An upload that fails is logged as an error naming the URL and the files, and never raised: the
task's outcome is dbt's, and an upload problem must not turn a failed build into a storage error
(or a successful one into a failure) — the log says the artifacts are missing.

:class:`ObjectStorageStateFiles` keeps ``retry_from_failure``'s state file (Airflow < 3.3, no task
state store) directly at the URL, so the retry finds it whichever worker it runs on.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_dbt_provider.logs import Logger
from airflow_dbt_provider.object_storage.locations import join, make_parent_dirs, open_location, shown


class ArtifactsUpload:
    """A local staging directory for the runner's artifacts, uploaded to ``url`` by :meth:`finish`.

    The URL is checked (scheme, provider, connection) when the task starts, so a wrong one fails
    before dbt runs rather than after.
    """

    def __init__(self, url: str, log: Logger) -> None:
        self.url = url
        self.destination = open_location(url, "artifacts_dir")
        self.local = Path(tempfile.mkdtemp(prefix="dbt-artifacts-"))
        self._log = log
        self._finished = False

    def finish(self) -> bool:
        """Upload what the runner kept, once, and remove the staging directory.

        Returns whether every file arrived; never raises (see the module docstring).
        """
        if self._finished:
            return True
        self._finished = True
        try:
            return self._upload()
        finally:
            shutil.rmtree(self.local, ignore_errors=True)

    def _upload(self) -> bool:
        files = sorted(p for p in self.local.rglob("*") if p.is_file())
        if not files:
            self._log.info("artifacts_dir %s: dbt wrote no artifacts to upload", shown(self.url))
            return True
        names = [p.relative_to(self.local).as_posix() for p in files]
        started = time.monotonic()
        try:
            fs = self.destination.fs
            remote = [join(self.destination, n) for n in names]
            for path in remote:
                make_parent_dirs(fs, path)
            fs.put([str(p) for p in files], remote)
        except Exception as exc:
            self._log.error(
                "artifacts_dir %s: could not upload %s (%s: %s); they are lost for this try (the "
                "task's own outcome is dbt's and is not changed by this)",
                shown(self.url),
                ", ".join(names),
                type(exc).__name__,
                exc,
            )
            return False
        self._log.info(
            "artifacts_dir %s: uploaded %s in %.1fs",
            shown(self.url),
            ", ".join(names),
            time.monotonic() - started,
        )
        return True


class ObjectStorageStateFiles:
    """:class:`~airflow_dbt_provider.core.retry_state.StateFiles` at an object-storage URL.

    One object per file: a PUT replaces an object as a whole, so a reader never sees half a state.
    """

    def __init__(self, url: str) -> None:
        self.location: Any = open_location(url, "artifacts_dir")

    def read(self, name: str) -> str | None:
        try:
            return str((self.location / name).read_text())
        except FileNotFoundError:
            return None

    def write(self, name: str, text: str) -> None:
        make_parent_dirs(self.location.fs, join(self.location, name))
        (self.location / name).write_text(text)

    def remove(self, name: str) -> None:
        path = self.location / name
        if path.exists():
            path.unlink()
