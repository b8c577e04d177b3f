"""A real forward proxy on loopback (CONNECT tunnels only), in a thread of its own.

What corporate proxies do for HTTPS: the client asks ``CONNECT host:port``, the proxy checks the
``Proxy-Authorization`` header, answers 200 and then copies bytes both ways; the TLS session is
end to end between the client and the server behind. Optionally the proxy itself listens with TLS
(an ``https://`` proxy). Every CONNECT it sees is recorded, so tests can prove traffic went through.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class ConnectRecord:
    target: str
    authorization: str | None
    status: int


@dataclass
class ForwardProxy:
    """``with ForwardProxy(user="me", password="pw") as proxy: proxy.url`` -> ``http://me:pw@127.0.0.1:N``."""

    user: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    records: list[ConnectRecord] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        credentials = f"{self.user}:{self.password}@" if self.user else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("forward proxy did not start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.run(self._main(started))

    async def _main(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await self._stop.wait()

    def _authorized(self, header: str | None) -> bool:
        if self.user is None:
            return True
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            fields = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
            }
            authorization = fields.get("proxy-authorization")
            if method != "CONNECT":
                status = 405
            elif not self._authorized(authorization):
                status = 407
            else:
                status = 200
            self.records.append(ConnectRecord(target, authorization, status))
            if status != 200:
                writer.write(
                    f"HTTP/1.1 {status} No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                return
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
