"""Stopping an in-process dbt invocation from outside it (``on_kill``), queries included.

``dbtRunner`` has no cancel API, and a killed Airflow task must not leave its warehouse queries
running for hours. Two steps, both what dbt itself does on Ctrl-C:

1. :func:`cancel_open_queries` asks every adapter dbt has registered in this process to cancel
   its open connections (``BaseAdapter.cancel_open_connections``: ``pg_terminate_backend`` on
   PostgreSQL, the driver's cancel elsewhere);
2. :func:`interrupt_invocation` raises :class:`DbtKilled` (a ``KeyboardInterrupt``) in the main
   thread, where dbt's own interrupt handling writes ``run_results.json``, cancels again and
   unwinds, so no further node starts.

No dbt import happens here unless dbt is already loaded: with nothing loaded there is nothing to
cancel.
"""

from __future__ import annotations

import _thread
import logging
import sys
import threading

_log = logging.getLogger(__name__)


class DbtKilled(KeyboardInterrupt):
    """Raised into a running dbt invocation to stop it.

    A ``KeyboardInterrupt`` on purpose: dbt treats it as Ctrl-C (records the nodes finished so
    far, cancels its connections, starts nothing new), and ``except Exception`` blocks in
    between do not swallow it.
    """


def cancel_open_queries(logger: logging.Logger | None = None) -> list[str]:
    """Cancel the open connections of every adapter dbt registered in this process.

    Returns the names of the connections cancelled (dbt names them after the node running on
    them). Safe to call from a signal handler or another thread while dbt runs; never raises,
    because a failure to cancel must not prevent the kill itself.
    """
    log = logger or _log
    factory = sys.modules.get("dbt.adapters.factory")
    if factory is None:
        return []
    cancelled: list[str] = []
    for adapter in list(factory.FACTORY.adapters.values()):
        try:
            if not adapter.is_cancelable():
                log.warning("dbt adapter %s cannot cancel queries; they may keep running", adapter.type())
                continue
            # The adapter runs its cancel statement on a connection of the calling thread.
            with adapter.connection_named("airflow_on_kill"):
                names = [name for name in adapter.cancel_open_connections() if name]
        except Exception:
            log.warning("Could not cancel the open queries of dbt adapter %s", adapter.type(), exc_info=True)
            continue
        cancelled += names
    if cancelled:
        log.info("Cancelled the open dbt queries on connections: %s", ", ".join(sorted(cancelled)))
    return cancelled


def interrupt_invocation() -> None:
    """Stop the dbt invocation running in the main thread.

    Called from the main thread (Airflow runs ``on_kill`` from its SIGTERM handler there), this
    raises :class:`DbtKilled` at the point dbt was interrupted; from any other thread it asks
    Python to interrupt the main thread, which dbt sees the same way.
    """
    if threading.current_thread() is threading.main_thread():
        raise DbtKilled("dbt was stopped because the Airflow task was killed")
    _thread.interrupt_main()
