"""Text for one line of a log, an error or a dbt Cloud field: whitespace collapsed, cut with ``…``."""

from __future__ import annotations


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and ``…`` in exactly as many or fewer
    (trailing whitespace before the ``…`` is dropped)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
