"""When and how long to wait before retrying a dbt Cloud request.

The decisions live here, free of any HTTP library, so the sync (requests) and async (asyncio) clients
retry exactly alike and the policy is testable on its own.

Triggering a run is not idempotent: if dbt Cloud received the request and then failed to answer, a
retry would start the job twice. So a request that may have reached dbt Cloud (read timeout,
connection reset after sending, 500) is retried only when it is safe to repeat (GET, cancel,
DELETE); a request that provably did not (connection refused, connect timeout, 429, 502, 503, 504)
is retried always.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from airflow_dbt_provider.cloud.errors import DbtCloudConfigError
from airflow_dbt_provider.connection_defaults import (
    RETRY_BACKOFF_BASE_S,
    RETRY_BACKOFF_MAX_S,
    RETRY_MAX_ATTEMPTS,
)

#: Statuses meaning "not processed, come back later": safe to retry for any method.
NOT_PROCESSED_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, honouring ``Retry-After``.

    ``max_attempts`` counts the first try: 5 means one request and up to four retries. The wait
    before retry *n* (1-based) is ``backoff_base * 2 ** (n - 1)`` capped at ``backoff_max``; with
    ``jitter`` it is drawn from the upper half of that, so many workers do not retry in lockstep.
    A ``Retry-After`` header (seconds or HTTP date), when honoured, is a floor on the wait, itself
    capped at ``backoff_max`` so a call never hangs longer than the policy allows.
    """

    max_attempts: int = RETRY_MAX_ATTEMPTS
    backoff_base: float = RETRY_BACKOFF_BASE_S
    backoff_max: float = RETRY_BACKOFF_MAX_S
    jitter: bool = True
    honour_retry_after: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DbtCloudConfigError(
                f"retry max_attempts must be at least 1 (1 disables retries), got {self.max_attempts}"
            )
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise DbtCloudConfigError(
                f"retry backoff_base and backoff_max must not be negative, got "
                f"{self.backoff_base} and {self.backoff_max}"
            )

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """One attempt, no retries."""
        return cls(max_attempts=1)

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt is allowed after ``attempt`` (1-based) failed transiently."""
        return attempt < self.max_attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        backoff = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        if self.jitter:
            backoff = backoff / 2 + random.uniform(0, backoff / 2)
        if self.honour_retry_after and retry_after is not None:
            backoff = max(backoff, min(retry_after, self.backoff_max))
        return backoff


def is_retryable_status(status: int, *, idempotent: bool) -> bool:
    """Whether an HTTP status is worth retrying for a request of this kind."""
    if status in NOT_PROCESSED_STATUSES:
        return True
    return idempotent and 500 <= status < 600


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date. ``None`` if absent/bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
