"""One aiohttp ``ClientSession`` per event loop, shared by every async client (and so every trigger) on it.

Why: a triggerer runs hundreds of triggers in one event loop. With a session each, every trigger
loads a CA bundle (tens of ms of CPU), opens its own TLS connection (a full handshake) and keeps
it idle between polls; the official provider even opens a session per poll. Shared, N triggers
cost one SSL context per CA bundle and a handful of warm keep-alive connections.

What may be shared: the session carries no settings of its own. TLS trust (an SSL context), proxy,
timeout and headers, the token among them, are given per request by each client, and aiohttp
keeps connections apart by host, TLS context and proxy. So triggers of different connections to
one host share connections, and no session, key, ``repr`` or log line holds a token. No cookies
are kept: on a session shared between tokens, one token's session cookie must never ride along
on another's request.

Lifetime: the session is reference-counted. Each :class:`AsyncDbtCloudClient` holds one lease from
its first request until ``aclose()``; the last release closes the session and its connections.
Sessions live per event loop (a connection belongs to the loop that opened it), so a new loop (a
restarted triggerer, a test) starts clean. SSL contexts, which are loop-independent and the
expensive part, are cached process-wide and rebuilt when the CA file changes.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

#: Connections open at once per host (and TLS context and proxy). dbt Cloud answers a poll in tens
#: of ms, so a few warm connections carry hundreds of polls a second; the cap keeps a burst (every
#: trigger of a restarted triggerer polling at once) from opening hundreds of TLS connections.
MAX_CONNECTIONS_PER_HOST = 64
#: How long an idle connection is kept: long enough to bridge the polls of many triggers, shorter
#: than the idle timeouts of the load balancers in front of dbt Cloud.
KEEPALIVE_EXPIRY_S = 30.0


# --- SSL contexts, process-wide ---------------------------------------------------------------

_ssl_lock = threading.Lock()
_ssl_contexts: dict[tuple[str, int, int], ssl.SSLContext] = {}


def _ca_file(verify: bool | str) -> str | None:
    """The CA bundle behind ``verify``: the given path, certifi's bundle, or None (system store)."""
    if isinstance(verify, str):
        return verify
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        return None
    return str(certifi.where())


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """A (cached) SSL context for a resolved ``verify``. Blocking: call it off the event loop.

    Cached by the CA file's path, size and modification time, so a rotated bundle is picked up by
    the next session while a hundred clients of one bundle load it once. ``verify=False`` (the
    user's choice) gives a context that checks neither the certificate nor the host name.
    """
    if verify is False:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        return insecure
    cafile = _ca_file(verify)
    if cafile is None:  # pragma: no cover - see _ca_file
        return ssl.create_default_context()
    stat = os.stat(cafile)
    key = (cafile, stat.st_mtime_ns, stat.st_size)
    with _ssl_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=cafile)
            for stale in [k for k in _ssl_contexts if k[0] == cafile]:
                del _ssl_contexts[stale]
            _ssl_contexts[key] = context
        return context


# --- the per-loop session -----------------------------------------------------------------------


class SessionPool:
    """The shared ``ClientSession`` of one event loop, leased by clients, and its SSL contexts.

    Contexts are looked up once per ``verify`` while the session lives (in a worker thread: a CA
    file is read from disk), so a herd of clients starting together makes one lookup, not one
    thread hop each.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[bool | str, asyncio.Future[ssl.SSLContext]] = {}
        self.users = 0

    def __repr__(self) -> str:
        return f"SessionPool(open={len(self)}, users={self.users})"

    def __len__(self) -> int:
        """Sessions open now: 1 while leased, else 0."""
        return 0 if self._session is None else 1

    async def context(self, verify: bool | str) -> ssl.SSLContext:
        """The SSL context for ``verify``; raises ``OSError`` when the CA file cannot be read."""
        future = self._contexts.get(verify)
        if future is None or (future.done() and (future.cancelled() or future.exception() is not None)):
            future = self._contexts[verify] = asyncio.ensure_future(asyncio.to_thread(ssl_context, verify))
        return await asyncio.shield(future)

    def acquire(self) -> aiohttp.ClientSession:
        """The loop's session, opened on first use. Every call must be matched by one :meth:`release`."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=MAX_CONNECTIONS_PER_HOST,
                keepalive_timeout=KEEPALIVE_EXPIRY_S,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # proxies and CA bundles come resolved (settings.resolve_transport)
                raise_for_status=False,
            )
        self.users += 1
        return self._session

    async def release(self) -> None:
        """Give back one lease; the last one closes the session and its connections."""
        self.users -= 1
        if self.users > 0:
            return
        session, self._session = self._session, None
        self.users = 0
        self._contexts.clear()  # the next session re-checks the CA files (rotated bundles)
        if session is not None:
            await session.close()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SessionPool] = weakref.WeakKeyDictionary()


def loop_pool() -> SessionPool:
    """The session pool of the running event loop (created on first use, gone with the loop)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = SessionPool()
    return pool


# --- lookups shared on one loop -----------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Cached(Generic[V]):
    result: asyncio.Future[V]
    expires: float


class LoopCache(Generic[K, V]):
    """An async lookup's result, shared by the callers on one event loop for ``ttl`` seconds.

    For what a herd of triggers asks at once and what changes rarely, such as the connection
    behind their client settings: one lookup serves them all, and concurrent callers await the
    same lookup instead of each starting one. Failures are not kept: the next caller asks again.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, _Cached[V]]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:  # keys only, never the values (they may hold tokens)
        return f"LoopCache(ttl={self.ttl})"

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, or ``await load()`` (once, however many ask at the same time)."""
        loop = asyncio.get_running_loop()
        entries = self._by_loop.get(loop)
        if entries is None:
            entries = self._by_loop[loop] = {}
        entry = entries.get(key)
        if entry is None or not _usable(entry, loop.time()):
            entry = entries[key] = _Cached(asyncio.ensure_future(load()), loop.time() + self.ttl)
        return await asyncio.shield(entry.result)

    def forget(self, key: K) -> None:
        """Drop ``key`` on the running loop, so the next caller looks it up again."""
        entries = self._by_loop.get(asyncio.get_running_loop())
        if entries is not None:
            entries.pop(key, None)


def _usable(entry: _Cached[Any], now: float) -> bool:
    """In flight, or done with a value that has not expired."""
    result = entry.result
    if not result.done():
        return True
    return not result.cancelled() and result.exception() is None and now < entry.expires
