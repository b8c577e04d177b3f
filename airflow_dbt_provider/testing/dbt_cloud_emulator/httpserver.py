"""A small HTTP/1.1 server on asyncio streams and ``h11``, built for many keep-alive clients.

Why not uvicorn + an ASGI app: the emulator must be able to *reset* a connection mid-request (a
fault real networks produce) and ASGI gives an app no handle on its transport. ``h11`` (already
installed: httpx and uvicorn depend on it) does the HTTP parsing; asyncio streams give each
connection a coroutine and direct access to ``transport.abort()``. One event loop comfortably
serves thousands of idle keep-alive connections: there is no per-connection thread, no
concurrency limit, and the listen backlog is large so connection bursts queue instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import h11

MAX_BODY = 1 << 20  # 1 MiB: more than any API request body; larger bodies get 413
SERVER_NAME = b"dbt-cloud-emulator"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False  # drop the TCP connection instead of answering


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves ``handler`` on ``host:port`` (port 0 picks a free one), with TLS if ``ssl_context``."""

    def __init__(
        self, handler: Handler, host: str, port: int, ssl_context: ssl.SSLContext | None, backlog: int = 4096
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._backlog = backlog
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, ssl=self._ssl, backlog=self._backlog
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every open connection (clients see a closed connection)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                try:
                    request = await self._read_request(conn, reader, writer)
                except _BadRequest as exc:
                    await self._send_error(conn, writer, exc.status, str(exc))
                    break
                if request is None:
                    break
                response = await self._handler(request)
                if response.reset:
                    writer.transport.abort()
                    break
                await self._send(conn, writer, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError, asyncio.IncompleteReadError, OSError):
            pass  # the client went away or spoke garbage mid-stream: nothing left to answer
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if head is None:
                    raise _BadRequest(exc.error_status_hint, f"malformed HTTP request: {exc}") from None
                raise
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
                length = dict(event.headers).get(b"content-length")
                if length is not None and int(length) > MAX_BODY:
                    raise _BadRequest(413, f"request body over {MAX_BODY} bytes")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _BadRequest(413, f"request body over {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                target = urlsplit(head.target.decode("latin-1"))
                return Request(
                    method=head.method.decode("ascii").upper(),
                    path=unquote(target.path),
                    query=parse_qs(target.query, keep_blank_values=True),
                    headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers},
                    body=bytes(body),
                )
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("server", SERVER_NAME.decode()),
            *response.headers,
        ]
        data = conn.send(h11.Response(status_code=response.status, headers=headers)) or b""
        if response.body:
            data += conn.send(h11.Data(data=response.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()

    async def _send_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status_block = {
            "code": status,
            "is_success": False,
            "user_message": "Bad request.",
            "developer_message": text,
        }
        body = json.dumps({"status": status_block, "data": None}).encode()
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send(conn, writer, Response(status, body, headers=[("connection", "close")]))
