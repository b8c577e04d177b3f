"""One shared HTTP transport per event loop and wire settings, for many triggers at once.

Why: a triggerer runs hundreds of triggers in one event loop. With a client each, every trigger
loads a CA bundle (tens of ms of CPU), opens its own TLS connection (a full handshake) and keeps
it idle between polls. Shared, N triggers cost one SSL context and a handful of warm connections.

What may be shared is decided by :class:`PoolKey`: host, TLS trust, proxy, timeout and user agent,
never the token. The token is sent per request (see :mod:`async_client`), so triggers of
different connections to the same host share connections too, and no key, ``repr`` or log line
ever holds a token. No cookies are kept: on a transport shared between tokens, one token's
session must never ride along on another's request.

Lifetime: a pool entry is reference-counted. Each :class:`AsyncDbtCloudClient` holds one lease
from its first request until ``aclose()``; the last release closes the transport's connections.
Pools live per event loop (a connection belongs to the loop that opened it), so a new loop (a
restarted triggerer, a test) starts clean. SSL contexts, which are loop-independent and the
expensive part, are cached process-wide and rebuilt when the CA file changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from airflow_dbt_provider.cloud.wire import Connection, Headers, Origin, Proxy, WireResponse

log = logging.getLogger(__name__)

#: Requests in flight at once per pool entry, each on a lane (one keep-alive connection) of
#: its own. dbt Cloud answers a poll in tens of ms, so a few warm lanes carry
#: hundreds of polls a second; the cap keeps a burst (every trigger of a restarted triggerer
#: polling at once) from opening hundreds of TLS connections, and leaves room for slow answers.
MAX_LANES = 64
#: How long an idle connection is kept: long enough to bridge the polls of many triggers, shorter
#: than the idle timeouts of the load balancers in front of dbt Cloud.
KEEPALIVE_EXPIRY_S = 30.0


@dataclass(frozen=True)
class PoolKey:
    """The wire settings that make two clients interchangeable. Holds no token by construction.

    ``proxy`` is kept out of ``repr`` because a proxy URL may carry a password.
    """

    base_url: str
    verify: bool | str
    proxy: str | None = field(repr=False)
    timeout: float
    user_agent: str


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
    the next client while a hundred clients of one bundle load it once. ``verify=False`` (the
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


class SharedHttp:
    """The shared transport of one :class:`PoolKey`: up to ``MAX_LANES`` keep-alive connections.

    Each connection (a lane) carries one request at a time; requests beyond ``MAX_LANES`` wait on
    a FIFO semaphore. Free lanes are reused last-in first-out, so steady polling keeps a few warm
    connections busy while the rest expire. A lane the server closed is known to be closed as soon
    as the event loop sees it (see :mod:`wire`), so no request is sent on a dead connection.
    """

    def __init__(self, key: PoolKey, context: ssl.SSLContext) -> None:
        self._key = key
        self._context = context
        self._origin = Origin.parse(key.base_url)
        self._proxy = Proxy.parse(key.proxy) if key.proxy else None
        # Through a plain-HTTP proxy an http:// API is asked in absolute form; https goes via CONNECT.
        self._prefix = key.base_url if self._proxy is not None and self._origin.scheme == "http" else ""
        fixed = [
            ("Host", self._origin.authority),
            ("Accept", "application/json"),
            ("Accept-Encoding", "gzip"),
            ("User-Agent", key.user_agent),
        ]
        if self._prefix and self._proxy is not None and self._proxy.authorization:
            fixed.append(("Proxy-Authorization", self._proxy.authorization))
        self._headers: tuple[tuple[str, str], ...] = tuple(fixed)
        self._free: list[Connection] = []
        self._busy = 0
        self._slots = asyncio.Semaphore(MAX_LANES)

    def __repr__(self) -> str:
        return f"SharedHttp({self._key!r}, lanes={self.lanes}, free={len(self._free)})"

    @property
    def lanes(self) -> int:
        """Connections open now: idle ones plus those carrying a request (at most ``MAX_LANES``)."""
        return len(self._free) + self._busy

    async def request(
        self, method: str, target: str, *, headers: Headers = (), body: bytes | None = None
    ) -> WireResponse:
        """Send one request (``target``: path and query) on a free lane and read the whole answer.

        ``body`` is sent as JSON. Raises :class:`wire.WireError` when no complete answer came.
        """
        all_headers = [*self._headers, *headers]
        if body is not None:
            all_headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        async with self._slots:
            self._busy += 1
            try:
                lane = self._take() or await self._open()
                url = self._prefix + target
                response = await lane.request(method, url, all_headers, body, self._key.timeout)
            finally:
                self._busy -= 1
            if lane.reusable:
                self._free.append(lane)
            return response

    def _take(self) -> Connection | None:
        """The most recently used live lane; closed ones and those idle past ``KEEPALIVE_EXPIRY_S``
        (the oldest, at the bottom of the stack) are dropped on the way."""
        now = asyncio.get_running_loop().time()
        free = self._free
        while free and now - free[0].idle_since >= KEEPALIVE_EXPIRY_S:
            free.pop(0).close()
        while free:
            lane = free.pop()
            if lane.reusable:
                return lane
            lane.close()
        return None

    async def _open(self) -> Connection:
        return await Connection.open(
            self._origin,
            context=self._context,
            timeout=self._key.timeout,
            proxy=self._proxy,
        )

    async def aclose(self) -> None:
        """Close every idle lane (a request in flight closes its own when it ends)."""
        free, self._free = self._free, []
        for lane in free:
            lane.close()


async def _build(key: PoolKey) -> SharedHttp:
    """A new shared transport; its SSL context comes from a worker thread, never the event loop."""
    return SharedHttp(key, await asyncio.to_thread(ssl_context, key.verify))


# --- the per-loop pool ------------------------------------------------------------------------


@dataclass
class _Entry:
    shared: asyncio.Task[SharedHttp]
    users: int = 0


class ClientPool:
    """Shared transports of one event loop, by :class:`PoolKey`, reference-counted."""

    def __init__(self) -> None:
        self._entries: dict[PoolKey, _Entry] = {}

    def __repr__(self) -> str:
        return f"ClientPool(clients={len(self._entries)}, users={self.users})"

    @property
    def users(self) -> int:
        return sum(e.users for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    async def acquire(self, key: PoolKey) -> SharedHttp:
        """The shared client for ``key``, built once however many callers ask at the same time.

        Every successful call must be matched by one :meth:`release`.
        """
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(asyncio.ensure_future(_build(key)))
            self._entries[key] = entry
        entry.users += 1
        try:
            return await asyncio.shield(entry.shared)
        except BaseException:
            await self._drop_user(key, entry)
            raise

    async def release(self, key: PoolKey) -> None:
        """Give back one lease; the last one closes the client and its connections."""
        entry = self._entries.get(key)
        if entry is not None:
            await self._drop_user(key, entry)

    async def _drop_user(self, key: PoolKey, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users > 0:
            return
        if self._entries.get(key) is entry:
            del self._entries[key]
        task = entry.shared
        if not task.done():
            task.cancel()
            return
        if task.cancelled() or task.exception() is not None:
            return
        await task.result().aclose()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientPool] = weakref.WeakKeyDictionary()


def loop_pool() -> ClientPool:
    """The pool of the running event loop (created on first use, gone with the loop)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = ClientPool()
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
