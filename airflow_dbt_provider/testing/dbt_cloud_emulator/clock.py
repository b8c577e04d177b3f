"""Emulated time: wall-clock time scaled by a speed factor that can change while runs are in flight.

Runs store when things happen in *emulated* seconds; their status is computed from the clock on
each request, so no background ticker is needed and thousands of runs cost nothing. The clock is
piecewise linear (one segment per speed change) so an emulated instant can be mapped back to the
wall-clock time at which it happened, which is what the API reports in ``started_at`` etc.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SpeedError(ValueError):
    """The speed factor is not a positive finite number."""


def check_speed(speed: object) -> float:
    """Return ``speed`` as a float, or raise a :class:`SpeedError` that says what is accepted."""
    try:
        value = float(speed)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SpeedError(f"speed must be a number > 0 (e.g. 10 to run 10x faster), got {speed!r}") from None
    if not (0 < value < float("inf")):
        raise SpeedError(f"speed must be a number > 0 (e.g. 10 to run 10x faster), got {speed!r}")
    return value


class EmulatedClock:
    """Emulated seconds since the clock started; ``speed`` emulated seconds pass per real second."""

    def __init__(self, speed: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        start = wall()
        # Segments of (real start, emulated start, speed), oldest first.
        self._segments: list[tuple[float, float, float]] = [(start, 0.0, check_speed(speed))]

    @property
    def speed(self) -> float:
        return self._segments[-1][2]

    def now(self) -> float:
        """The current emulated time in seconds since the clock started."""
        real0, emu0, speed = self._segments[-1]
        return emu0 + (self._wall() - real0) * speed

    def set_speed(self, speed: object) -> None:
        """Change the speed from now on; emulated time so far is kept, so nothing jumps."""
        value = check_speed(speed)
        with self._lock:
            real = self._wall()
            real0, emu0, old = self._segments[-1]
            self._segments.append((real, emu0 + (real - real0) * old, value))

    def wall_time(self, emulated: float) -> float:
        """The wall-clock (epoch) time at which emulated time ``emulated`` was, or will be, reached."""
        segments = self._segments
        for real0, emu0, speed in reversed(segments):
            if emulated >= emu0:
                return real0 + (emulated - emu0) / speed
        real0, emu0, speed = segments[0]
        return real0 + (emulated - emu0) / speed
