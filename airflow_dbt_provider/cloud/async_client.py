"""Asynchronous dbt Cloud client for triggers, on aiohttp.

Every client of an event loop sends on the loop's one ``ClientSession`` (see :mod:`pool`), so a
trigger's polls reuse warm pooled TLS connections instead of a handshake per poll or per trigger.
Measured in ``benchmarks/trigger_scale.py``: the official trigger's cost per poll comes from
opening a session per poll, not from aiohttp.

Nothing here blocks the event loop: the SSL context (which reads CA files from disk) is built in a
worker thread on first use, and waits between retries are ``asyncio.sleep``. TLS and proxy come from
the same :func:`resolve_transport` as the sync client and are passed per request (the session's
own environment lookup is off), so ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` and
``HTTPS_PROXY``/``NO_PROXY`` mean the same to both. Retries follow :class:`RetrySchedule`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import aiohttp
from yarl import URL

from airflow_dbt_provider.cloud import _endpoints as ep
from airflow_dbt_provider.cloud._core import (
    ApiCall,
    Pager,
    RetrySchedule,
    headers,
    parse_json,
    tls_error,
    unwrap,
)
from airflow_dbt_provider.cloud.client import run_web_url
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError
from airflow_dbt_provider.cloud.models import Account, Run, RunStatus
from airflow_dbt_provider.cloud.pool import SessionPool, loop_pool
from airflow_dbt_provider.cloud.settings import (
    CA_BUNDLE_ENV_VARS,
    ClientSettings,
    Transport,
    resolve_transport,
)

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
#: Failures that prove the request never reached dbt Cloud: no connection was made, or the
#: proxy refused the tunnel. Anything else (read timeout, connection lost) may have reached it.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError, aiohttp.ConnectionTimeoutError)
#: TLS failures that are the peer hanging up mid-handshake (transient), not an untrusted certificate.
_HANDSHAKE_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


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


def proxy_for(settings: ClientSettings, proxy: str | None) -> tuple[URL | None, dict[str, str]]:
    """The proxy URL without credentials, and the ``Proxy-Authorization`` header its credentials make.

    Kept apart so the password never sits in a URL aiohttp may quote in an error. Only
    ``http://`` and ``https://`` proxies exist for aiohttp: any other is a config error that names
    the scheme, never the password.
    """
    if not proxy:
        return None, {}
    parts = urlsplit(proxy)
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = f"proxy scheme {parts.scheme!r} is not supported; use an http:// (or https://) proxy URL"
    elif not parts.hostname:
        problem = "the proxy URL has no host"
    else:
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            problem = "the proxy URL has an invalid port"
    if problem:
        raise DbtCloudConfigError(f"Cannot use the proxy for {settings.access_url}: {problem}.")
    if parts.username is None:
        return URL(proxy), {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return URL(proxy).with_user(None), {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}


class AsyncDbtCloudClient:
    """The calls a trigger needs: account (auth check), run status, cancel, runs, artifacts.

    Cheap to create: it holds settings only. Its first request leases the event loop's shared
    session (see :mod:`pool`); ``aclose()`` gives the lease back. The token travels per request,
    so the shared session never holds it.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.transport: Transport = cached_transport(settings)
        self._proxy, self._proxy_headers = proxy_for(settings, self.transport.proxy)
        self._headers = headers(settings)
        if settings.access_url.startswith("http://"):  # asked of the proxy itself, no tunnel
            self._headers.update(self._proxy_headers)
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.timeout, sock_read=settings.timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        self._pool: SessionPool | None = None
        self._urls: dict[tuple[str, tuple[tuple[str, Any], ...]], URL] = {}
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
        """Give back the lease on the shared session (the last one closes its connections)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            self._session = None
            await pool.release()

    async def _http(self) -> tuple[aiohttp.ClientSession, ssl.SSLContext]:
        """The shared session, leased on first use, and the SSL context (built off the event loop)."""
        if self._session is None:
            async with self._lock:
                if self._session is None:
                    pool = loop_pool()
                    try:
                        self._ssl = await pool.context(self.transport.verify)
                    except OSError as exc:
                        raise DbtCloudConfigError(
                            f"Cannot load the CA bundle {self.transport.verify!r} for "
                            f"{self.settings.access_url}: {exc.strerror or exc}. Point the connection's "
                            "CA bundle (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE) at a readable PEM file."
                        ) from None
                    self._pool, self._session = pool, pool.acquire()
        assert self._ssl is not None
        return self._session, self._ssl

    async def _send(self, call: ApiCall) -> bytes:
        """Send with retries; return a 2xx answer's body or raise the matching :class:`DbtCloudError`."""
        session, context = await self._http()
        url = self._url(call)
        body = None if call.body is None else json.dumps(call.body).encode()
        schedule = RetrySchedule(call, self.settings, log)
        while True:
            try:
                async with session.request(
                    call.method,
                    url,
                    headers=self._headers if body is None else self._json_headers,
                    data=body,
                    proxy=self._proxy,
                    proxy_headers=self._proxy_headers or None,
                    ssl=context,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    content = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if _untrusted(exc):
                    raise tls_error(call, self.settings, exc, self.transport.verify) from None
                sent = not isinstance(exc, _NOT_SENT)
                await asyncio.sleep(schedule.after_failure(exc, reached_server=sent))
                continue
            status = response.status
            log.debug("dbt Cloud %s %s -> %d", call.method, call.path, status)
            if 200 <= status < 300:
                return content
            await asyncio.sleep(schedule.after_status(status, content, response.headers.get("Retry-After")))

    def _url(self, call: ApiCall) -> URL:
        """The URL of a call, built once: a trigger asks for the same run at every poll."""
        key = (call.path, tuple(sorted((call.params or {}).items())))
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            query = urlencode(call.params or {})
            target = self.settings.api_base + call.path + (f"?{query}" if query else "")
            url = self._urls[key] = URL(target, encoded=True)  # the path is quoted by _endpoints
        return url

    async def _json(self, call: ApiCall) -> Any:
        return parse_json(call, await self._send(call))

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
        pager = Pager(ep.list_runs(self.settings, job_id, status, order_by), limit)
        while not pager.done:
            pager.add(await self._json(pager.next_call()))
        return [Run.from_api(r) for r in pager.items]

    async def list_artifacts(self, run_id: int, step: int | None = None) -> list[str]:
        return ep.artifact_paths(await self._data(ep.list_artifacts(self.settings, run_id, step)), run_id)

    async def get_artifact(self, run_id: int, path: str, step: int | None = None) -> bytes:
        return await self._send(ep.get_artifact(self.settings, run_id, path, step))

    async def get_artifact_json(self, run_id: int, path: str, step: int | None = None) -> Any:
        call = ep.get_artifact(self.settings, run_id, path, step)
        return parse_json(call, await self._send(call))

    def run_url(self, run: Run) -> str:
        return run_web_url(self.settings, run)


def _untrusted(exc: BaseException) -> bool:
    """A TLS failure asking again will not fix: an untrusted or invalid certificate, a bad handshake."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return True
    if isinstance(exc, aiohttp.ClientSSLError):
        return not isinstance(getattr(exc, "os_error", None), _HANDSHAKE_CUT)
    return False
