"""What the sync and async clients share: request descriptions, answers to errors, envelopes.

Kept free of any HTTP library so both clients build the same requests and read the same answers;
each client only moves bytes and sleeps its own way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_dbt_provider.cloud.errors import (
    DbtCloudAuthError,
    DbtCloudConfigError,
    DbtCloudError,
    DbtCloudNotFoundError,
    DbtCloudRequestError,
    DbtCloudResponseError,
    DbtCloudTLSError,
    DbtCloudTransientError,
)
from airflow_dbt_provider.cloud.models import RunStatus
from airflow_dbt_provider.cloud.retry import is_retryable_status, parse_retry_after
from airflow_dbt_provider.cloud.settings import ClientSettings

#: The API's page size ceiling.
MAX_PAGE_SIZE = 100
#: Bytes of an error body quoted in an exception: enough for dbt Cloud's message, not a whole page.
_BODY_QUOTE = 300


@dataclass(frozen=True)
class ApiCall:
    """One API request, described independently of the HTTP library that sends it.

    ``what`` names the request in error messages ("a run of job 4 in account 7"); ``missing``
    names what a 404 means is not there ("job 4 in account 7"; default ``what``); ``idempotent``
    says whether repeating the request after it may have reached dbt Cloud is harmless (retry.py).
    """

    method: str
    path: str
    what: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    idempotent: bool = True
    expect_json: bool = True
    missing: str | None = None

    def with_page(self, offset: int, limit: int) -> ApiCall:
        params = dict(self.params or {})
        params.update(offset=offset, limit=limit)
        return replace(self, params=params)


class RetrySchedule:
    """When to resend one call and how long to wait first, free of I/O (as httpx's ``BaseClient``).

    Both clients run the same loop: send; on an answer or a failure ask the schedule, which either
    returns the seconds to sleep before the next attempt (logged once, here) or raises the error
    the caller gets. They differ only in how they send and sleep. A request that may have reached
    dbt Cloud is resent only when the call is idempotent (see :mod:`retry`), so a trigger-run POST
    that may have started a run is never sent twice.
    """

    def __init__(self, call: ApiCall, settings: ClientSettings, logger: logging.Logger) -> None:
        self.call = call
        self.settings = settings
        self.logger = logger
        #: The attempt being made (1-based).
        self.attempt = 1

    def after_status(self, status: int, body: bytes | str, retry_after: str | None) -> float:
        """The wait before resending after a non-2xx answer, or raise the error for it."""
        policy = self.settings.retry
        if is_retryable_status(status, idempotent=self.call.idempotent) and policy.should_retry(self.attempt):
            return self._next(parse_retry_after(retry_after), f"HTTP {status}")
        raise error_for_status(self.call, self.settings, status, body, self.attempt)

    def after_failure(self, exc: BaseException, *, reached_server: bool) -> float:
        """The wait before resending after a request that got no answer, or raise the error for it.

        ``reached_server``: the request may have been received (read timeout, connection lost after
        sending); False only when it certainly was not (refused, connect timeout, proxy refusal).
        """
        if (reached_server and not self.call.idempotent) or not self.settings.retry.should_retry(
            self.attempt
        ):
            raise transport_error(self.call, self.settings, exc, self.attempt) from None
        return self._next(None, redact(type(exc).__name__, self.settings))

    def _next(self, retry_after: float | None, reason: str) -> float:
        retry = self.settings.retry
        delay = retry.delay(self.attempt, retry_after)
        self.logger.warning(
            "dbt Cloud: %s for %s (attempt %d of %d); retrying in %.1fs",
            reason,
            self.call.what,
            self.attempt,
            retry.max_attempts,
            delay,
        )
        self.attempt += 1
        return delay


def headers(settings: ClientSettings) -> dict[str, str]:
    """Request headers. The only place the token is read, so nothing else can leak it."""
    return {
        "Authorization": f"Token {settings.token}",
        "Accept": "application/json",
        "User-Agent": settings.user_agent,
    }


def redact(text: str, settings: ClientSettings) -> str:
    """Remove secrets from text that came from elsewhere (a server message, a library error)."""
    for secret in settings.secrets:
        text = text.replace(secret, "***")
    return text


def require_account(settings: ClientSettings, account_id: int | None = None) -> int:
    account = account_id if account_id is not None else settings.account_id
    if account is None:
        raise DbtCloudConfigError(
            "No dbt Cloud account id: set it on the connection (the Account ID field; it is the number "
            "after /deploy/ in your dbt Cloud URLs) or pass account_id"
        )
    return int(account)


def v2(account_id: int, rest: str = "") -> str:
    return f"/api/v2/accounts/{account_id}/{rest}"


def v3(account_id: int, rest: str = "") -> str:
    return f"/api/v3/accounts/{account_id}/{rest}"


def status_params(status: RunStatus | int | list[RunStatus | int] | None) -> dict[str, Any]:
    """``status`` or ``status__in`` query parameters from one status or several."""
    if status is None:
        return {}
    if isinstance(status, list | tuple | set | frozenset):
        codes = sorted(int(RunStatus.parse(s)) for s in status)
        return {"status__in": json.dumps(codes, separators=(",", ":"))}
    return {"status": int(RunStatus.parse(status))}


# --- answers ------------------------------------------------------------------------------------


def server_message(body: bytes | str) -> str:
    """dbt Cloud's own explanation from an error body (``status.user_message`` and field errors)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:_BODY_QUOTE]
    if not isinstance(payload, Mapping):
        return str(payload)[:_BODY_QUOTE]
    parts: list[str] = []
    status = payload.get("status")
    if isinstance(status, Mapping):
        parts += [str(status[k]) for k in ("user_message", "developer_message") if status.get(k)]
    data = payload.get("data")
    if isinstance(data, Mapping) and data:
        parts.append(json.dumps(data)[:_BODY_QUOTE])
    for key in ("detail", "message", "error"):
        if payload.get(key):
            parts.append(str(payload[key]))
    # Each part is a sentence of its own; joined as clauses so no ".;" or ".." appears.
    clauses = [c for c in (p.strip().rstrip(".;: ").strip() for p in parts) if c]
    return "; ".join(clauses)[:_BODY_QUOTE] or json.dumps(payload)[:_BODY_QUOTE]


def error_for_status(
    call: ApiCall, settings: ClientSettings, status: int, body: bytes | str, attempts: int = 1
) -> DbtCloudError:
    """The exception for a non-2xx answer, with a message naming the object and what to check."""
    said = redact(server_message(body), settings).strip().rstrip(".;: ")
    said = f" dbt Cloud said: {said}." if said else ""
    account = settings.account_id
    if status == 401:
        return DbtCloudAuthError(
            f"dbt Cloud rejected the API token (HTTP 401) for {call.what}.{said} Check the connection's "
            "API token: it must be a valid, unexpired service or personal access token.",
            status_code=status,
        )
    if status == 403:
        return DbtCloudAuthError(
            f"dbt Cloud refused access (HTTP 403) to {call.what}.{said} Check that the token belongs to "
            f"account {account} and has a permission set that allows this (e.g. Job Admin or Job Runner).",
            status_code=status,
        )
    if status == 404:
        return DbtCloudNotFoundError(
            f"dbt Cloud found no {call.missing or call.what} (HTTP 404).{said} Check that it exists, "
            "that the account id "
            f"({account}) is right, and that {settings.access_url} is your account's Access URL.",
            status_code=status,
        )
    if status == 429 or status >= 500:
        return DbtCloudTransientError(
            f"dbt Cloud answered HTTP {status} for {call.what} after {attempts} attempt(s).{said} "
            "dbt Cloud is overloaded or unavailable; check https://status.getdbt.com and retry later, "
            "or raise the connection's retry settings.",
            status_code=status,
        )
    return DbtCloudRequestError(
        f"dbt Cloud rejected the request for {call.what} (HTTP {status}).{said} Check the values passed.",
        status_code=status,
    )


def transport_error(
    call: ApiCall, settings: ClientSettings, exc: BaseException, attempts: int
) -> DbtCloudError:
    """The exception for a request that got no HTTP answer (retries exhausted or not retryable)."""
    detail = redact(f"{type(exc).__name__}: {exc}", settings)
    return DbtCloudTransientError(
        f"Could not reach dbt Cloud at {settings.access_url} for {call.what} after {attempts} attempt(s) "
        f"({detail}). Check the access URL, DNS, firewall and proxy settings, and "
        "https://status.getdbt.com."
    )


def tls_error(
    call: ApiCall, settings: ClientSettings, exc: BaseException, verify: bool | str
) -> DbtCloudError:
    trust = f"the CA bundle {verify}" if isinstance(verify, str) else "the default CA store"
    detail = redact(str(exc), settings)
    return DbtCloudTLSError(
        f"TLS verification failed for {settings.access_url} ({call.what}): {detail}. The certificate is not "
        f"trusted by {trust}. Set the connection's CA bundle (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE) to "
        "the PEM of your proxy's or server's CA."
    )


def parse_json(call: ApiCall, content: bytes) -> Any:
    """JSON from a 2xx body; a body that is not JSON is a :class:`DbtCloudResponseError`."""
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        raise DbtCloudResponseError(
            f"dbt Cloud answered {call.what} with a body that is not JSON: "
            f"{content[:120].decode('utf-8', 'replace')!r}. A proxy may be rewriting answers; check the "
            "access URL and proxy settings."
        ) from None


def unwrap(call: ApiCall, payload: Any) -> Any:
    """The ``data`` of a ``{"status": ..., "data": ...}`` envelope."""
    if isinstance(payload, Mapping) and "data" in payload:
        return payload["data"]
    raise DbtCloudResponseError(
        f"dbt Cloud answered {call.what} without the expected 'data' envelope: {str(payload)[:120]!r}"
    )


def total_count(payload: Any) -> int | None:
    """``extra.pagination.total_count`` of a list answer, when the API sends it."""
    try:
        value = payload["extra"]["pagination"]["total_count"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


@dataclass
class Pager:
    """Offset pagination state shared by both clients: ask, add, decide whether to ask again."""

    call: ApiCall
    limit: int | None = None
    items: list[Any] = field(default_factory=list)
    done: bool = False
    _page_size: int = MAX_PAGE_SIZE

    def __post_init__(self) -> None:
        limit = self.limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise DbtCloudConfigError(f"limit must be a positive integer or None (no limit), got {limit!r}")

    def next_call(self) -> ApiCall:
        remaining = self.limit - len(self.items) if self.limit is not None else MAX_PAGE_SIZE
        self._page_size = min(MAX_PAGE_SIZE, remaining)
        return self.call.with_page(len(self.items), self._page_size)

    def add(self, payload: Any) -> None:
        page = unwrap(self.call, payload)
        if not isinstance(page, list):
            raise DbtCloudResponseError(
                f"dbt Cloud answered {self.call.what} with {type(page).__name__}, not a list"
            )
        self.items.extend(page)
        total = total_count(payload)
        self.done = (
            not page
            or (self.limit is not None and len(self.items) >= self.limit)
            or (total is not None and len(self.items) >= total)
            or (total is None and len(page) < self._page_size)
        )
        if self.limit is not None:
            del self.items[self.limit :]
