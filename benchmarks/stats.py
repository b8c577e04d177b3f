"""Summaries of repeated measurements: median, min and max, and ratios between arms."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TypedDict


class Summary(TypedDict):
    n: int
    median: float
    min: float
    max: float


def summarize(samples: Sequence[float]) -> Summary | None:
    """Median, min and max of ``samples``; ``None`` when there is nothing to summarize.

    The median, not the mean: one run slowed by a noisy neighbour should not move the figure.
    """
    if not samples:
        return None
    return Summary(
        n=len(samples),
        median=float(statistics.median(samples)),
        min=float(min(samples)),
        max=float(max(samples)),
    )


def ratio(ours: Summary | None, anchor: Summary | None) -> float | None:
    """``ours / anchor`` of the medians (below 1 means we use less); ``None`` if either is missing."""
    if ours is None or anchor is None or anchor["median"] == 0:
        return None
    return ours["median"] / anchor["median"]
