"""Operator arguments as the types the dbt Cloud API wants, with errors in the user's own names.

Arguments arrive as ints, rendered templates (``"123"``) or, at DAG-parse time, values known only
at run time (a template, an ``XComArg``); these helpers tell them apart and convert them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def to_int(name: str, value: Any) -> int:
    """An id from an int or a rendered template (``"123"``), with an error that says what was wrong."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (or a template rendering to one), got {value!r}") from None


def to_optional_int(name: str, value: Any) -> int | None:
    """:func:`to_int`, with ``None`` and ``""`` (an empty rendered template) meaning not set."""
    return None if value is None or value == "" else to_int(name, value)


def is_deferred(value: Any) -> bool:
    """True for a value only known at run time: a Jinja template, an XComArg or another object."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list | tuple):
        return any(is_deferred(v) for v in value)
    if isinstance(value, Mapping):
        return any(is_deferred(v) for v in value.values())
    return value is not None and not isinstance(value, int | float | bool)
