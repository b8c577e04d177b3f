"""Asynchronous dbt Cloud client for triggers, on ``httpx.AsyncClient``.

Why httpx: it is a direct dependency of Airflow core, so it is always installed where a triggerer
runs; aiohttp only arrives with some providers. The ``AsyncClient`` is shared by every client of the
event loop with the same wire settings (see :mod:`pool`), so a trigger's polls reuse warm pooled TLS
connections instead of a handshake per poll or per trigger.

Nothing here blocks the event loop: the SSL context (which reads CA files from disk) is built in a
worker thread on first use, and waits between retries are ``asyncio.sleep``. TLS and proxy come from
the same :func:`resolve_transport` as the sync client, with httpx's own environment lookup off
(``trust_env=False``) — httpx would read ``SSL_CERT_FILE`` but ignore ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from types import TracebackType
from typing import Any

import httpx

from airflow_dbt_provider.cloud import _endpoints as ep
from airflow_dbt_provider.cloud._core import (
    ApiCall,
    Pager,
    announce_retry,
    error_for_status,
    headers,
    parse_json,
    tls_error,
    transport_error,
    unwrap,
)
from airflow_dbt_provider.cloud.client import _check_limit, _strings, run_web_url
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError
from airflow_dbt_provider.cloud.models import Account, Run, RunStatus
from airflow_dbt_provider.cloud.pool import ClientPool, PoolKey, SharedHttp, loop_pool, ssl_context
from airflow_dbt_provider.cloud.retry import is_retryable_status, parse_retry_after
from airflow_dbt_provider.cloud.settings import (
    CA_BUNDLE_ENV_VARS,
    ClientSettings,
    Transport,
    resolve_transport,
)

log = logging.getLogger(__name__)

#: httpx errors raised before a request left the machine: repeating is always safe.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_TRANSPORT_ERRORS = (httpx.TransportError,)


def build_ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """The SSL context for a resolved ``verify``: default trust store, a CA bundle, or off.

    Blocking (reads the CA file) and cached per CA file: see :func:`pool.ssl_context`.
    """
    return ssl_context(verify)


#: Environment variables :func:`resolve_transport` reads; a change in any of them resolves anew.
_TRANSPORT_ENV = (
    *CA_BUNDLE_ENV_VARS,
    "REQUEST_METHOD",
    *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
)
_TRANSPORT_CACHE_SIZE = 256
_URL_CACHE_SIZE = 64
_transports: dict[tuple[object, ...], Transport] = {}


def cached_transport(settings: ClientSettings) -> Transport:
    """:func:`resolve_transport`, remembered per settings and environment.

    Resolving scans the whole environment and stats CA files: cheap once, but not for each of
    a thousand triggers starting on one event loop. The key holds no token.
    """
    proxies = tuple(sorted(settings.proxies.items()))
    key = (settings.access_url, settings.verify, proxies, tuple(map(os.environ.get, _TRANSPORT_ENV)))
    transport = _transports.get(key)
    if transport is None:
        if len(_transports) >= _TRANSPORT_CACHE_SIZE:
            _transports.clear()
        transport = _transports[key] = resolve_transport(settings)
    return transport


class AsyncDbtCloudClient:
    """The calls a trigger needs: account (auth check), run status, cancel, runs, artifacts.

    Cheap to create: it holds settings only. Its first request leases the event loop's shared
    httpx client for these wire settings (see :mod:`pool`); ``aclose()`` gives the lease back.
    The token travels per request, so a shared client never holds it.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.transport: Transport = cached_transport(settings)
        self._key = PoolKey(
            base_url=settings.api_base,
            verify=self.transport.verify,
            proxy=self.transport.proxy,
            timeout=settings.timeout,
            user_agent=settings.user_agent,
        )
        self._auth = {"Authorization": headers(settings)["Authorization"]}
        self._shared: SharedHttp | None = None
        self._pool: ClientPool | None = None
        self._urls: dict[tuple[str, tuple[tuple[str, Any], ...]], httpx.URL] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        settings = self.settings
        return f"AsyncDbtCloudClient(access_url={settings.access_url!r}, account_id={settings.account_id})"

    async def __aenter__(self) -> AsyncDbtCloudClient:
        await self._http()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give back the lease on the shared client (the last one closes its connections)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            self._shared = None
            await pool.release(self._key)

    @property
    def _client(self) -> httpx.AsyncClient | None:
        """The leased httpx client, if any (for tests that inspect its connections)."""
        return None if self._shared is None else self._shared.client

    async def _http(self) -> SharedHttp:
        """The shared httpx client, leased on first use; its SSL context is built off the event loop."""
        if self._shared is not None:
            return self._shared
        async with self._lock:
            if self._shared is None:
                pool = loop_pool()
                try:
                    shared = await pool.acquire(self._key)
                except OSError as exc:
                    raise DbtCloudConfigError(
                        f"Cannot load the CA bundle {self.transport.verify!r} for "
                        f"{self.settings.access_url}: {exc.strerror or exc}. Point the connection's CA "
                        "bundle (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE) at a readable PEM file."
                    ) from None
                self._pool, self._shared = pool, shared
            return self._shared

    async def _send(self, call: ApiCall) -> httpx.Response:
        """Send with retries; return a 2xx response or raise the matching :class:`DbtCloudError`."""
        shared = await self._http()
        policy = self.settings.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await shared.request(
                    call.method, self._url(call), json=call.body, headers=self._auth
                )
            except _TRANSPORT_ERRORS as exc:
                if _is_tls_failure(exc):
                    raise tls_error(call, self.settings, exc, self.transport.verify) from None
                if not (isinstance(exc, _NOT_SENT) or call.idempotent) or not policy.should_retry(attempt):
                    raise transport_error(call, self.settings, exc, attempt) from None
                await self._wait(call, attempt, None, type(exc).__name__)
                continue
            log.debug("dbt Cloud %s %s -> %d", call.method, call.path, response.status_code)
            if response.is_success:
                return response
            status = response.status_code
            if is_retryable_status(status, idempotent=call.idempotent) and policy.should_retry(attempt):
                await self._wait(
                    call, attempt, parse_retry_after(response.headers.get("Retry-After")), f"HTTP {status}"
                )
                continue
            raise error_for_status(call, self.settings, status, response.content, attempt)

    def _url(self, call: ApiCall) -> httpx.URL:
        """The absolute URL of a call, parsed once: a trigger asks for the same run every poll, and
        httpx would otherwise parse and re-encode the URL and its query several times a request."""
        key = (call.path, tuple(sorted((call.params or {}).items())))
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[key] = httpx.URL(self.settings.api_base + call.path, params=call.params)
        return url

    async def _wait(self, call: ApiCall, attempt: int, retry_after: float | None, reason: str) -> None:
        delay = announce_retry(log, self.settings, call, attempt, retry_after, reason)
        await asyncio.sleep(delay)

    async def _json(self, call: ApiCall) -> Any:
        return parse_json(call, (await self._send(call)).content)

    async def _data(self, call: ApiCall) -> Any:
        return unwrap(call, await self._json(call))

    async def get_account(self, account_id: int | None = None) -> Account:
        return Account.from_api(await self._data(ep.get_account(self.settings, account_id)))

    async def get_run(self, run_id: int, include_steps: bool = False) -> Run:
        return Run.from_api(await self._data(ep.get_run(self.settings, run_id, include_steps)))

    async def cancel_run(self, run_id: int) -> Run:
        return Run.from_api(await self._data(ep.cancel_run(self.settings, run_id)))

    async def list_runs(
        self,
        job_id: int | None = None,
        status: RunStatus | int | list[RunStatus | int] | None = None,
        order_by: str = "-id",
        limit: int | None = None,
    ) -> list[Run]:
        _check_limit(limit)
        pager = Pager(ep.list_runs(self.settings, job_id, status, order_by), limit)
        while not pager.done:
            pager.add(await self._json(pager.next_call()))
        return [Run.from_api(r) for r in pager.items]

    async def list_artifacts(self, run_id: int, step: int | None = None) -> list[str]:
        return _strings(await self._data(ep.list_artifacts(self.settings, run_id, step)), run_id)

    async def get_artifact(self, run_id: int, path: str, step: int | None = None) -> bytes:
        return (await self._send(ep.get_artifact(self.settings, run_id, path, step))).content

    async def get_artifact_json(self, run_id: int, path: str, step: int | None = None) -> Any:
        call = ep.get_artifact(self.settings, run_id, path, step)
        return parse_json(call, (await self._send(call)).content)

    def run_url(self, run: Run) -> str:
        return run_web_url(self.settings, run)


def _is_tls_failure(exc: BaseException) -> bool:
    """Whether an httpx error wraps a certificate/handshake failure (not worth retrying)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)
