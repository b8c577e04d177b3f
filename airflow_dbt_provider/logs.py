"""The logger type the Airflow-free helpers write to, so they take an operator's ``self.log`` (a
structlog logger in the Task SDK) as well as a :class:`logging.Logger`."""

from __future__ import annotations

from typing import Any, Protocol


class Logger(Protocol):
    """``info``, ``warning`` and ``error`` with %-style arguments."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any) -> Any: ...

    def error(self, msg: Any, /, *args: Any) -> Any: ...
