"""dbt's structured events → Python log lines.

dbt's own console logger is switched off for our invocations (``log_level="none"``) and every
event reaches :class:`DbtEventLogger` instead, so each dbt line appears exactly once, at the
matching level, without colour codes, through whatever handlers the host (Airflow's task log)
installed. Error-level lines are also kept, so a failure without node results (a ``deps`` that
cannot resolve, a ``debug`` that cannot connect) still has a message to report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: Events that repeat what another line already said, or are only noise in a task log.
_SKIPPED_EVENTS = frozenset({"MainReportArgs", "ResourceReport", "CommandCompleted", "ParsePerfInfoPath"})
#: dbt's banner, repeated by every invocation: a runner's parse, then its command, would say it twice.
_ONCE_PER_LOGGER = frozenset({"MainReportVersion", "AdapterRegistered"})
#: The event a node-running command fires when its selection matched no node.
NOTHING_TO_DO = "NothingToDo"
REDACTED = "***"


class DbtEventLogger:
    """A ``dbtRunner`` callback that writes dbt's events to a :class:`logging.Logger`.

    ``secrets`` are values that must never reach a log (passwords from a profile's env); any
    occurrence in a dbt line is replaced by ``***``.
    """

    def __init__(self, logger: logging.Logger, *, secrets: Iterable[str] = ()) -> None:
        self.logger = logger
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
        self.errors: list[str] = []
        #: Whether dbt said its selection matched no node (``NothingToDo``) in this invocation.
        self.nothing_to_do = False
        self._banner: set[str] = set()

    def __call__(self, event: Any) -> None:
        """Handle one ``EventMsg``; never raises, since an exception here would abort dbt."""
        try:
            self._handle(event)
        except Exception:  # pragma: no cover - logging must not break a dbt run
            self.logger.debug("Could not log a dbt event", exc_info=True)

    def _handle(self, event: Any) -> None:
        info = event.info
        if info.name == NOTHING_TO_DO:
            self.nothing_to_do = True
        if info.name in _SKIPPED_EVENTS:
            return
        if info.name in _ONCE_PER_LOGGER:
            if info.msg in self._banner:
                return
            self._banner.add(info.msg)
        level = _LEVELS.get(info.level, logging.INFO)
        if not self.logger.isEnabledFor(level):
            return
        text = self.clean(info.msg)
        if not text.strip():
            return
        if level >= logging.ERROR:
            self.errors.append(text.strip())
        for line in text.splitlines():
            if line.strip():
                self.logger.log(level, "%s", line.rstrip())

    def clean(self, text: str) -> str:
        """Strip colour codes and redact secrets."""
        text = _ANSI.sub("", text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def reset(self) -> None:
        """Forget what a previous invocation reported."""
        self.errors.clear()
        self.nothing_to_do = False
