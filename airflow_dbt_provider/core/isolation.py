"""Process-level isolation for in-process dbt: one invocation at a time, state restored after.

dbt keeps global state (flags, the adapter factory, the event manager, dbt-duckdb's database
handle) and is not thread-safe, so invocations in one process are serialised by a lock, and
everything dbt may change in the process (``os.environ``, the working directory) is put back.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

#: Serialises dbt invocations in this process (re-entrant so a runner can parse, then run).
INVOCATION_LOCK = threading.RLock()


@contextlib.contextmanager
def process_state(env: Mapping[str, str]) -> Iterator[None]:
    """Apply ``env`` to ``os.environ`` for the block, then restore the environment and cwd.

    Restoring key by key (rather than clearing and refilling) keeps the variables that did not
    change present at every instant, for any other thread that reads them.
    """
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    os.environ.update(env)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.chdir(saved_cwd)
        for key in set(os.environ) - set(saved_env):
            del os.environ[key]
        for key, value in saved_env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def release_adapters() -> None:
    """Release everything an invocation left open: adapters, connections, log files, handles.

    ``reset_adapters()`` closes dbt's connections but dbt-duckdb keeps a process-wide database
    handle (``DuckDBConnectionManager._ENV``) that holds the file's lock until the process exits,
    so another process could not open the database. It is closed here, only when dbt-duckdb is
    already loaded, so other adapters are unaffected.

    The released adapters still own multiprocessing locks until the garbage collector runs;
    :func:`collect_garbage` (called by ``DbtRunner.close()``) finalises them.
    """
    duckdb_env = _take_duckdb_environment()
    from dbt.adapters.factory import reset_adapters
    from dbt_common.events.event_manager_client import cleanup_event_logger

    reset_adapters()
    cleanup_event_logger()
    if duckdb_env is not None:
        with contextlib.suppress(Exception):
            duckdb_env.close()


def forget_deprecations() -> None:
    """Start an invocation with no deprecations counted, as a dbt CLI process does.

    dbt counts the deprecations it met in a process-wide table and ends *every* invocation with
    a summary of the whole table, so in a long-lived process the summary of one parse would be
    repeated after each later invocation (the run that reuses the parse's manifest, the next
    task of ``airflow dags test``), and a deprecation met before would not be shown again.
    """
    module = sys.modules.get("dbt.deprecations")
    reset = getattr(module, "reset_deprecations", None) if module else None
    if reset is not None:
        reset()


def import_dbt() -> None:
    """Import dbt's programmatic API on a helper thread, the first time.

    Importing dbt leaves an exception's traceback behind in a module, and a traceback keeps every
    frame of the importing stack alive, with whatever locals those frames end up holding (a
    ``Manifest`` and its lock, for instance). A fresh thread's stack holds nothing of ours.
    """
    if "dbt.cli.main" in sys.modules:
        return
    failure: list[BaseException] = []

    def load() -> None:
        try:
            importlib.import_module("dbt.cli.main")
        except BaseException as exc:  # re-raised on the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=load, name="import-dbt", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def collect_garbage() -> None:
    """Finalise what dbt left behind, now rather than at interpreter exit.

    dbt's adapters and ``Manifest`` hold multiprocessing locks (named semaphores registered with
    Python's resource tracker) inside reference cycles. A task process that ends with
    ``os._exit`` (as Airflow's task runner does) never finalises them, and the resource tracker
    then warns about "leaked semaphore objects", which reads like a failure in the task log.
    """
    gc.collect()


def _take_duckdb_environment() -> Any:
    module = sys.modules.get("dbt.adapters.duckdb.connections")
    manager = getattr(module, "DuckDBConnectionManager", None) if module else None
    if manager is None or not hasattr(manager, "_ENV"):
        return None
    lock = getattr(manager, "_LOCK", None) or contextlib.nullcontext()
    with lock:
        environment = manager._ENV
        manager._ENV = None
    return environment
