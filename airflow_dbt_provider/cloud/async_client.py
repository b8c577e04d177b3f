"""Asynchronous dbt Cloud client for triggers, on the lean HTTP/1.1 transport of :mod:`wire`.

Why not httpx (which Airflow ships): per poll its layers cost several times the CPU of the poll
itself, and a triggerer makes hundreds of polls a second (see :mod:`wire` and
``benchmarks/trigger_scale.py``). The transport is shared by every client of the event loop with
the same wire settings (see :mod:`pool`), so a trigger's polls reuse warm pooled TLS connections
instead of a handshake per poll or per trigger.

Nothing here blocks the event loop: the SSL context (which reads CA files from disk) is built in a
worker thread on first use, and waits between retries are ``asyncio.sleep``. TLS and proxy come from
the same :func:`resolve_transport` as the sync client, so ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``
and ``HTTPS_PROXY``/``NO_PROXY`` mean the same to both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

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
from airflow_dbt_provider.cloud.pool import ClientPool, PoolKey, SharedHttp, loop_pool
from airflow_dbt_provider.cloud.retry import is_retryable_status, parse_retry_after
from airflow_dbt_provider.cloud.settings import (
    CA_BUNDLE_ENV_VARS,
    ClientSettings,
    Transport,
    resolve_transport,
)
from airflow_dbt_provider.cloud.wire import Proxy, WireError, WireResponse, WireTLSError

log = logging.getLogger(__name__)


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
    transport for these wire settings (see :mod:`pool`); ``aclose()`` gives the lease back.
    The token travels per request, so a shared client never holds it.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.transport: Transport = cached_transport(settings)
        if self.transport.proxy:
            try:
                Proxy.parse(self.transport.proxy)
            except ValueError as exc:
                raise DbtCloudConfigError(f"Cannot use the proxy for {settings.access_url}: {exc}.") from None
        self._key = PoolKey(
            base_url=settings.api_base,
            verify=self.transport.verify,
            proxy=self.transport.proxy,
            timeout=settings.timeout,
            user_agent=settings.user_agent,
        )
        self._auth = (("Authorization", headers(settings)["Authorization"]),)
        self._shared: SharedHttp | None = None
        self._pool: ClientPool | None = None
        self._targets: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}
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

    async def _http(self) -> SharedHttp:
        """The shared transport, leased on first use; its SSL context is built off the event loop."""
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

    async def _send(self, call: ApiCall) -> WireResponse:
        """Send with retries; return a 2xx response or raise the matching :class:`DbtCloudError`."""
        shared = await self._http()
        policy = self.settings.retry
        body = None if call.body is None else json.dumps(call.body).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                target = self._target(call)
                response = await shared.request(call.method, target, headers=self._auth, body=body)
            except WireError as exc:
                if isinstance(exc, WireTLSError):
                    raise tls_error(call, self.settings, exc, self.transport.verify) from None
                if (exc.sent and not call.idempotent) or not policy.should_retry(attempt):
                    raise transport_error(call, self.settings, exc, attempt) from None
                await self._wait(call, attempt, None, type(exc).__name__)
                continue
            log.debug("dbt Cloud %s %s -> %d", call.method, call.path, response.status_code)
            if response.is_success:
                return response
            status = response.status_code
            if is_retryable_status(status, idempotent=call.idempotent) and policy.should_retry(attempt):
                await self._wait(
                    call, attempt, parse_retry_after(response.headers.get("retry-after")), f"HTTP {status}"
                )
                continue
            raise error_for_status(call, self.settings, status, response.content, attempt)

    def _target(self, call: ApiCall) -> str:
        """The request target (path and query) of a call, built once: a trigger asks for the same
        run at every poll."""
        key = (call.path, tuple(sorted((call.params or {}).items())))
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= _URL_CACHE_SIZE:
                self._targets.clear()
            query = urlencode(call.params or {})
            target = self._targets[key] = call.path + (f"?{query}" if query else "")
        return target

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
