"""The lean HTTP/1.1 transport (cloud/wire.py) against real sockets: keep-alive, framing, failures.

Servers here are small raw asyncio servers written per test, so each can misbehave exactly as the
test needs (close an idle connection, stall, reset mid-answer, answer garbage). Proxies are the
real CONNECT proxy of support/forward_proxy.py in front of the real emulator.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.dbt_cloud_client import SECRET_TOKEN, settings_for
from support.forward_proxy import ForwardProxy

from airflow_dbt_provider.cloud import (
    AsyncDbtCloudClient,
    DbtCloudClient,
    DbtCloudConfigError,
    DbtCloudTransientError,
)
from airflow_dbt_provider.cloud.wire import (
    Connection,
    Origin,
    Proxy,
    WireConnectError,
    WireConnectionLost,
    WireProtocolError,
    WireTimeout,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.testing.dbt_cloud_emulator.certs import (
    CertificateFiles,
    generate_certificates,
    server_ssl_context,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[Origin, list[int]]]:
    """A loopback server running ``handler`` per connection; yields its origin and a connection count."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    async with server:
        yield Origin("http", "127.0.0.1", server.sockets[0].getsockname()[1]), connections


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then say nothing (longer than any test waits)."""
    await read_request(reader)
    await asyncio.sleep(3)


async def get(conn: Connection, timeout: float = 5.0) -> bytes:
    response = await conn.request("GET", "/x", [("Host", "test")], None, timeout)
    assert response.status_code == 200
    return response.content


async def test_keep_alive_reuses_the_connection_and_notices_when_the_server_closes_it() -> None:
    async def serve_two_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await read_request(reader)
            writer.write(OK)
            await writer.drain()
        # then close the idle keep-alive connection, as load balancers do

    async with raw_server(serve_two_then_close) as (origin, connections):
        conn = await Connection.open(origin, context=None, timeout=5)
        assert await get(conn) == b"{}"
        assert await get(conn) == b"{}"
        assert len(connections) == 1
        for _ in range(100):  # the event loop delivers the close; no request is needed to find out
            if not conn.reusable:
                break
            await asyncio.sleep(0.01)
        assert not conn.reusable


async def test_chunked_and_gzip_bodies_are_decoded() -> None:
    body = gzip.compress(b'{"data": "' + b"x" * 10000 + b'"}')
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in chunks:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # the connection stays usable for a second request
        writer.write(OK)
        await writer.drain()

    async with raw_server(serve) as (origin, connections):
        conn = await Connection.open(origin, context=None, timeout=5)
        assert await get(conn) == b'{"data": "' + b"x" * 10000 + b'"}'
        assert await get(conn) == b"{}"
        assert len(connections) == 1


async def test_a_silent_server_times_out_and_the_connection_is_dropped() -> None:
    async with raw_server(stall) as (origin, _):
        conn = await Connection.open(origin, context=None, timeout=5)
        with pytest.raises(WireTimeout) as caught:
            await get(conn, timeout=0.2)
        assert caught.value.sent  # it may have reached the server: only idempotent calls repeat
        assert not conn.reusable


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", WireConnectionLost),  # cut short
        (b"SMTP ready\r\n\r\n", WireProtocolError),
        (b"", WireConnectionLost),  # closed without a word
    ],
)
async def test_broken_answers_raise_errors_that_say_the_request_was_sent(
    answer: bytes, error: type[Exception]
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with raw_server(serve) as (origin, _):
        conn = await Connection.open(origin, context=None, timeout=5)
        with pytest.raises(error) as caught:
            await get(conn)
        assert caught.value.sent  # type: ignore[attr-defined]
        assert not conn.reusable


async def test_refused_connection_was_not_sent() -> None:
    async with raw_server(read_request) as (origin, _):
        pass  # closed: nothing listens on the port any more
    with pytest.raises(WireConnectError) as caught:
        await Connection.open(origin, context=None, timeout=5)
    assert not caught.value.sent


async def test_cancelling_a_request_closes_its_connection() -> None:
    async with raw_server(stall) as (origin, _):
        conn = await Connection.open(origin, context=None, timeout=5)
        task = asyncio.create_task(get(conn))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not conn.reusable  # half a request on it: never reused


def test_an_unsupported_proxy_is_a_config_error_without_its_password(emulator: DbtCloudEmulator) -> None:
    settings = settings_for(emulator, proxies={"https": "socks5://me:pr0xy-pw@127.0.0.1:1080"})
    with pytest.raises(DbtCloudConfigError, match="socks5") as caught:
        AsyncDbtCloudClient(settings)
    assert "pr0xy-pw" not in str(caught.value)


def test_proxy_url_credentials_become_a_basic_header_and_stay_out_of_repr() -> None:
    proxy = Proxy.parse("http://me%40corp:pr0xy-pw@proxy.example:3128")
    assert proxy.origin == Origin("http", "proxy.example", 3128)
    assert proxy.authorization == "Basic bWVAY29ycDpwcjB4eS1wdw=="  # me@corp:pr0xy-pw
    assert "pr0xy-pw" not in repr(proxy)
    with pytest.raises(ValueError, match="socks5"):
        Proxy.parse("socks5://proxy.example:1080")


# --- through a real proxy, to the real emulator ---------------------------------------------------


async def test_async_client_tunnels_through_an_authenticating_proxy(emulator: DbtCloudEmulator) -> None:
    with ForwardProxy(user="me", password="pr0xy-pw") as proxy:
        settings = settings_for(emulator, proxies={"https": proxy.url})
        async with AsyncDbtCloudClient(settings) as client:
            assert (await client.get_account()).id == emulator.account_id
            assert (await client.get_account()).id == emulator.account_id
    emulator_port = str(urlsplit(emulator.base_url).port)
    assert [(r.target.rsplit(":", 1)[1], r.status) for r in proxy.records] == [(emulator_port, 200)]
    assert proxy.records[0].authorization == "Basic bWU6cHIweHktcHc="


def test_sync_client_tunnels_through_the_same_proxy(emulator: DbtCloudEmulator) -> None:
    with ForwardProxy(user="me", password="pr0xy-pw") as proxy:
        settings = settings_for(emulator, proxies={"https": proxy.url})
        with DbtCloudClient(settings) as client:
            assert client.get_account().id == emulator.account_id
    assert [r.status for r in proxy.records] == [200]


async def test_a_proxy_refusing_credentials_is_a_clear_error_without_the_password(
    emulator: DbtCloudEmulator,
) -> None:
    with ForwardProxy(user="me", password="right") as proxy:
        wrong = proxy.url.replace(":right@", ":pr0xy-pw@")
        settings = settings_for(emulator, proxies={"https": wrong})
        async with AsyncDbtCloudClient(settings) as client:
            with pytest.raises(DbtCloudTransientError) as caught:
                await client.get_account()
    message = str(caught.value)
    assert "407" in message
    assert "proxy" in message
    assert "pr0xy-pw" not in message
    assert SECRET_TOKEN not in message


@pytest.fixture
def proxy_certificates(emulator: DbtCloudEmulator, tmp_path: Path) -> tuple[CertificateFiles, Path]:
    """The proxy's own certificate (from another CA) and a bundle trusting both CAs."""
    files = generate_certificates(tmp_path)
    bundle = tmp_path / "both.pem"
    bundle.write_bytes(files.ca_cert.read_bytes() + Path(emulator.ca_cert_path).read_bytes())
    return files, bundle


async def test_async_client_tunnels_through_an_https_proxy(
    emulator: DbtCloudEmulator, proxy_certificates: tuple[CertificateFiles, Path]
) -> None:
    files, bundle = proxy_certificates
    with ForwardProxy(tls=server_ssl_context(files)) as proxy:
        settings = settings_for(emulator, proxies={"https": proxy.url}, verify=str(bundle))
        async with AsyncDbtCloudClient(settings) as client:
            assert (await client.get_account()).id == emulator.account_id
    assert [r.status for r in proxy.records] == [200]
