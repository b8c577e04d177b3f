"""Fault injection: make matching requests fail the ways real networks and services do.

A fault matches requests by method and an ``fnmatch`` pattern on the URL path and fires ``count``
times, then expires. Kinds: ``status`` (an error answer such as 429 with ``Retry-After`` or a
500/502/503 burst), ``slow`` (answer normally after ``delay`` seconds), ``reset`` (drop the TCP
connection without answering) and ``malformed`` (``200`` with a body that is not valid JSON).
Control requests under ``/_emulator/`` are never faulted.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

FAULT_KINDS = ("status", "slow", "reset", "malformed")


class FaultError(ValueError):
    """A fault description is invalid; the message says which argument and what is accepted."""


@dataclass
class Fault:
    id: int
    kind: str
    path: str = "*"
    method: str = "*"
    count: int = 1
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and fnmatch.fnmatchcase(path, self.path)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultError(f"{name} must be a number between {low} and {high}, got {value!r}")
    return float(value)


class FaultBook:
    """The active faults, consumed first-in first-out by matching requests (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        *,
        kind: str,
        path: str = "*",
        method: str = "*",
        count: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Validate and register a fault; see the module docstring for the kinds."""
        if kind not in FAULT_KINDS:
            raise FaultError(f"kind must be one of {list(FAULT_KINDS)}, got {kind!r}")
        if not isinstance(path, str) or not path.startswith(("/", "*")):
            raise FaultError(
                f'path must be an fnmatch pattern on the URL path such as "/api/v2/*", got {path!r}'
            )
        if not isinstance(method, str) or not method:
            raise FaultError(f'method must be an HTTP method such as "GET" or "*", got {method!r}')
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FaultError(f"count must be a positive integer (how many requests fail), got {count!r}")
        if kind == "status" and (
            isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
        ):
            raise FaultError(f"status must be an HTTP error code 400-599, got {status!r}")
        fault = Fault(
            id=next(self._ids),
            kind=kind,
            path=path,
            method=method.upper(),
            count=count,
            status=status,
            retry_after=None if retry_after is None else _number("retry_after", retry_after, 0, 3600),
            delay=_number("delay", delay, 0, 600),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first active fault matching this request, with one use consumed; None if none match."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def active(self) -> list[Fault]:
        with self._lock:
            return [Fault(**f.as_dict()) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
