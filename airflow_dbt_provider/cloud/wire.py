"""A lean HTTP/1.1 client connection on asyncio and h11, for the requests triggers make.

Why not httpx here: a triggerer polls hundreds of runs from one event loop, and per poll httpx,
httpcore and anyio spend most of the CPU in layers a keep-alive GET of a small JSON document does
not need (per-request cancel scopes, connection-pool scans, cookie and URL handling, a socket
poll to tell whether a connection is stale). Measured in ``benchmarks/trigger_scale.py``: about
80% of a poll's CPU sat in those layers. This module keeps what a poll needs:

* one connection per :class:`Connection`, as an :class:`asyncio.Protocol`, so the event loop
  itself tells us the server closed an idle connection (no polling to find stale ones);
* HTTP/1.1 framing by h11 (already the emulator's parser; a dependency of httpx anyway);
* TLS by asyncio's own SSL transport; a proxy by a CONNECT tunnel (``http://`` proxies, or
  ``https://`` ones where the running Python supports TLS inside TLS);
* a read timeout per wait (the server went quiet for ``timeout`` seconds), and errors that say
  whether the request can have reached the server, which decides whether it may be sent again.

No Airflow imports, no tokens: headers are given per request and never logged or kept.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11

#: Largest response head (status line and headers) accepted, as h11 enforces it.
MAX_HEAD_BYTES = 64 * 1024

Headers = Sequence[tuple[str, str]]


class WireError(Exception):
    """A request that got no complete HTTP answer. ``sent``: it may have reached the server."""

    sent = True


class WireConnectError(WireError):
    """Could not open the connection (DNS, refused, unreachable, proxy refused the tunnel)."""

    sent = False


class WireTLSError(WireConnectError):
    """The TLS handshake failed, typically an untrusted certificate: asking again will not help."""


class WireTimeout(WireError):
    """The server sent nothing for the whole timeout."""


class WireConnectionLost(WireError):
    """The connection closed (or was reset) before the answer was complete."""


class WireProtocolError(WireError):
    """The answer was not valid HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class WireResponse:
    """A complete answer: status, headers (names in lower case; repeated ones joined) and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass(frozen=True)
class Origin:
    """Where a connection goes: scheme, host and port of the API (and of the proxy, if any)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {parts.scheme!r} URL")
        return cls(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Proxy:
    """A forward proxy: its origin and the ``Proxy-Authorization`` value its URL carries, if any.

    ``repr`` never shows the credentials.
    """

    origin: Origin
    authorization: str | None = None

    def __repr__(self) -> str:
        return f"Proxy({self.origin.scheme}://{self.origin.authority})"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"proxy scheme {parts.scheme!r} is not supported; use an http:// (or https://) proxy URL"
            )
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        return cls(Origin.parse(url), authorization)


def tls_in_tls_supported() -> bool:
    """asyncio can start TLS on a TLS transport (a tunnel through an ``https://`` proxy) from 3.11."""
    return sys.version_info >= (3, 11)


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, used for one request at a time, kept alive between requests.

    Open it with :meth:`open`; send with :meth:`request`. After a request that did not end
    cleanly (error, timeout, cancellation, ``Connection: close``) it is closed and
    :attr:`reusable` is False, so a pool can drop it.
    """

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._transport: asyncio.BaseTransport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._closed = False
        self.idle_since = 0.0

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._wake()

    def eof_received(self) -> bool | None:
        self._h11.receive_data(b"")
        self._closed = True
        self._wake()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            self._h11.receive_data(b"")
        self._closed = True
        self._lost = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        origin: Origin,
        *,
        context: ssl.SSLContext | None,
        timeout: float,
        proxy: Proxy | None = None,
    ) -> Connection:
        """Connect (through ``proxy`` when given) and do the TLS handshake for ``https`` origins.

        ``context`` is the SSL context of every TLS hop: an ``https`` origin and an ``https://``
        proxy (ignored for plain ``http``).
        """
        conn = cls()
        first_hop = proxy.origin if proxy is not None else origin
        try:
            await asyncio.wait_for(conn._connect(origin, context, timeout, proxy), timeout)
        except ssl.SSLError as exc:
            conn.close()
            if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):  # closed mid-handshake
                raise WireConnectError(f"{first_hop.authority} closed the TLS handshake: {exc}") from exc
            raise WireTLSError(f"TLS handshake with {first_hop.authority} failed: {exc}") from exc
        except (OSError, asyncio.TimeoutError) as exc:
            conn.close()
            what = f"proxy {first_hop.authority}" if proxy is not None else first_hop.authority
            raise WireConnectError(f"cannot connect to {what}: {_describe(exc)}") from exc
        except WireConnectError:
            conn.close()
            raise
        except WireError as exc:  # the proxy's answer to CONNECT: nothing reached the API yet
            conn.close()
            raise WireConnectError(f"proxy tunnel to {origin.authority} failed: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def _connect(
        self,
        origin: Origin,
        context: ssl.SSLContext | None,
        timeout: float,
        proxy: Proxy | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        hop = proxy.origin if proxy is not None else origin
        hop_context = context if hop.scheme == "https" else None
        await loop.create_connection(
            lambda: self,
            hop.host,
            hop.port,
            ssl=hop_context,
            server_hostname=hop.host if hop_context is not None else None,
            ssl_handshake_timeout=timeout if hop_context is not None else None,
        )
        if proxy is not None and origin.scheme == "https":
            await self._tunnel(origin, proxy, context, timeout)

    async def _tunnel(
        self, origin: Origin, proxy: Proxy, context: ssl.SSLContext | None, timeout: float
    ) -> None:
        """Ask the proxy for a CONNECT tunnel to ``origin``, then start TLS with it through the tunnel."""
        if proxy.origin.scheme == "https" and not tls_in_tls_supported():
            raise WireConnectError(
                "an https:// proxy needs Python 3.11 or later (TLS inside TLS); use the proxy's http:// URL"
            )
        headers = [("Host", origin.authority)]
        if proxy.authorization:
            headers.append(("Proxy-Authorization", proxy.authorization))
        self._write(self._h11.send(h11.Request(method="CONNECT", target=origin.authority, headers=headers)))
        response = await self._next_event(timeout)
        if not isinstance(response, h11.Response) or response.status_code != 200:
            status = getattr(response, "status_code", "no answer")
            raise WireConnectError(
                f"proxy {proxy.origin.authority} refused CONNECT to {origin.authority}: {status}"
            )
        trailing, _ = self._h11.trailing_data
        if trailing:
            raise WireProtocolError("proxy sent data before the tunnel's TLS handshake")
        assert context is not None
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        new = await loop.start_tls(
            self._transport,  # type: ignore[arg-type]
            self,
            context,
            server_hostname=origin.host,
            ssl_handshake_timeout=timeout,
        )
        if new is None:  # pragma: no cover - the transport closed under us
            raise WireConnectionLost("the tunnel closed during the TLS handshake")
        self._transport = new

    # --- requests -----------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Open, idle and in a state where the next request may start."""
        return not self._closed and self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes | None, timeout: float
    ) -> WireResponse:
        """Send one request and read the whole answer. Any failure closes the connection.

        ``target`` is what goes on the request line: a path with query, or an absolute URL for a
        plain-HTTP proxy. ``timeout`` bounds each wait for the server, not the whole exchange.
        """
        try:
            return await self._exchange(method, target, headers, body, timeout)
        except h11.RemoteProtocolError as exc:
            cut_short = self._closed  # the server hung up mid-answer, rather than speaking nonsense
            self.close()
            if cut_short:
                raise WireConnectionLost(f"{_lost_message(self._lost)} ({exc})") from None
            raise WireProtocolError(f"invalid HTTP answer: {exc}") from None
        except h11.LocalProtocolError as exc:
            self.close()
            raise WireProtocolError(f"invalid request: {exc}") from None
        except BaseException:
            self.close()
            raise

    async def _exchange(
        self, method: str, target: str, headers: Headers, body: bytes | None, timeout: float
    ) -> WireResponse:
        if self._closed:
            raise WireConnectionLost("the connection was closed before the request")
        conn = self._h11
        out = conn.send(h11.Request(method=method, target=target, headers=list(headers)))
        if body:
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        self._write(out)
        head = await self._next_event(timeout)
        while isinstance(head, h11.InformationalResponse):
            head = await self._next_event(timeout)
        if not isinstance(head, h11.Response):
            raise WireProtocolError(f"expected a response, got {type(head).__name__}")
        chunks: list[bytes] = []
        while True:
            event = await self._next_event(timeout)
            if isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise WireProtocolError(f"unexpected {type(event).__name__} in the response body")
        fields: dict[str, str] = {}
        for name, value in head.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            fields[key] = f"{fields[key]}, {text}" if key in fields else text
        content = b"".join(chunks)
        if fields.get("content-encoding", "").strip().lower() == "gzip":
            content = _gunzip(content)
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self.idle_since = asyncio.get_running_loop().time()
        else:
            self.close()
        return WireResponse(head.status_code, fields, content)

    async def _next_event(self, timeout: float) -> h11.Event | type[h11.PAUSED]:
        """The next h11 event, waiting for data at most ``timeout`` seconds at a time."""
        conn = self._h11
        while True:
            event = conn.next_event()
            if isinstance(event, h11.ConnectionClosed):
                raise WireConnectionLost(_lost_message(self._lost))
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            if self._closed:  # closed here (h11 was told of a remote close and would not ask)
                raise WireConnectionLost(_lost_message(self._lost))
            await self._wait(timeout)

    async def _wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter, timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise WireConnectionLost("the connection was closed before the request")
        transport.write(data)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the connection (idempotent); a request in flight on it fails."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        self._wake()


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(WireTimeout(f"no answer within {timeout:g} s"))


def _lost_message(exc: BaseException | None) -> str:
    if exc is None:
        return "the server closed the connection before answering completely"
    return f"the connection was lost: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _gunzip(content: bytes) -> bytes:
    try:
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise WireProtocolError(f"the gzip-encoded body is corrupt: {exc}") from None
