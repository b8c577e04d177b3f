"""The async client's HTTP behaviour on aiohttp, against real sockets: keep-alive, gzip, failures,
whether a failed request may have reached the server, proxies and their credentials.

Servers here are small raw asyncio servers written per test, so each can misbehave exactly as the
test needs (close an idle connection, stall, hang up mid-answer, answer garbage). Proxies are the
real CONNECT proxy of support/forward_proxy.py in front of the real emulator.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.dbt_cloud_client import SECRET_TOKEN, settings_for
from support.forward_proxy import ForwardProxy

from airflow_dbt_provider.cloud import (
    AsyncDbtCloudClient,
    ClientSettings,
    DbtCloudClient,
    DbtCloudConfigError,
    DbtCloudTransientError,
    RetryPolicy,
    TriggerRunOptions,
)
from airflow_dbt_provider.cloud import _endpoints as ep
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.testing.dbt_cloud_emulator.certs import (
    CertificateFiles,
    generate_certificates,
    server_ssl_context,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ACCOUNT = json.dumps({"status": {"code": 200}, "data": {"id": 7, "name": "raw"}}).encode()
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ACCOUNT),
    ACCOUNT,
)
RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, _Heads]]:
    """A loopback HTTP server running ``handler`` per connection.

    Yields its URL and the request heads it read (one entry per request, in order), so a test can
    count attempts and connections from the server's side.
    """
    heads = _Heads()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.connections += 1
        try:
            await handler(_Recording(reader, heads), writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            heads.settled_connections += 1
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", heads


class _Heads(list[bytes]):
    """The request heads a raw server read, and how far its connections have got.

    The client and the server share one event loop, so when the client gives up, the server may
    not yet have read the last attempt's head: ``settled()`` waits until every accepted connection
    has had its head read or has ended, instead of counting too early.
    """

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.settled_connections = 0
        self.read_connections = 0

    async def settled(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.read_connections + self.settled_connections < self.connections:
            if loop.time() > deadline:
                raise AssertionError(f"{self.connections} connections, not all read in {timeout} s")
            await asyncio.sleep(0.01)


class _Recording:
    """A StreamReader whose ``request()`` reads and records one request head (and any body)."""

    def __init__(self, reader: asyncio.StreamReader, heads: _Heads) -> None:
        self.reader = reader
        self.heads = heads
        self.first = True

    async def request(self) -> bytes:
        head = await self.reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await self.reader.readexactly(int(line.split(b":", 1)[1]))
        self.heads.append(head)
        if self.first:
            self.first = False
            self.heads.read_connections += 1
        return head


def raw_settings(url: str, **overrides: object) -> ClientSettings:
    values: dict[str, object] = {
        "account_id": 7,
        "token": SECRET_TOKEN,
        "access_url": url,
        "retry": RETRY,
        "timeout": 5.0,
    }
    values.update(overrides)
    return ClientSettings(**values)  # type: ignore[arg-type]


async def test_keep_alive_reuses_the_connection_and_survives_the_server_closing_it() -> None:
    connections = 0

    async def serve_two_then_close(reader: _Recording, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):
            await reader.request()
            writer.write(OK)
            await writer.drain()
        # then close the idle keep-alive connection, as load balancers do

    async with (
        raw_server(serve_two_then_close) as (url, heads),
        AsyncDbtCloudClient(raw_settings(url)) as client,
    ):
        assert (await client.get_account()).id == 7
        assert (await client.get_account()).id == 7
        assert connections == 1  # the second request rode the first one's connection
        await asyncio.sleep(0.2)  # the server's close reaches the client's event loop
        assert (await client.get_account()).id == 7  # a fresh connection, not a failed request
        assert connections == 2
        assert len(heads) == 3  # no attempt was lost on the closed connection


async def test_chunked_and_gzip_bodies_are_decoded() -> None:
    body = json.dumps({"data": {"id": 7, "name": "x" * 10000}}).encode()
    packed = gzip.compress(body)
    chunks = [packed[i : i + 4096] for i in range(0, len(packed), 4096)]

    async def serve(reader: _Recording, writer: asyncio.StreamWriter) -> None:
        head = await reader.request()
        assert b"gzip" in head.lower()  # the client asked for it
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in chunks:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(serve) as (url, heads), AsyncDbtCloudClient(raw_settings(url)) as client:
        account = await client.get_account()
    assert account.name == "x" * 10000
    assert len(heads) == 1


async def test_a_cookie_one_token_got_never_rides_on_another_tokens_request() -> None:
    async def serve(reader: _Recording, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.request()
            cookie = (
                b"Set-Cookie: sessionid=first-tokens-session; Path=/\r\n" if len(reader.heads) == 1 else b""
            )
            writer.write(OK.replace(b"\r\n\r\n", b"\r\n" + cookie + b"\r\n", 1))
            await writer.drain()

    async with raw_server(serve) as (url, heads):
        url = url.replace("127.0.0.1", "localhost")  # cookie jars drop cookies of IP addresses
        async with AsyncDbtCloudClient(raw_settings(url)) as first:
            second = AsyncDbtCloudClient(raw_settings(url, token="dbtc_another-token"))
            assert (await first.get_account()).id == 7  # answered with a session cookie
            assert (await second.get_account()).id == 7  # on the shared session
            assert (await first.get_account()).id == 7
            await second.aclose()
    assert [b"cookie:" in head.lower() for head in heads] == [False, False, False]


async def stall(reader: _Recording, writer: asyncio.StreamWriter) -> None:
    """Read the request, then say nothing (longer than any test waits)."""
    await reader.request()
    await asyncio.sleep(3)


async def cut_short(reader: _Recording, writer: asyncio.StreamWriter) -> None:
    await reader.request()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
    await writer.drain()


async def garbage(reader: _Recording, writer: asyncio.StreamWriter) -> None:
    await reader.request()
    writer.write(b"SMTP ready\r\n\r\n")
    await writer.drain()


async def hang_up(reader: _Recording, writer: asyncio.StreamWriter) -> None:
    await reader.request()  # and close without a word


@pytest.mark.parametrize("handler", [stall, cut_short, garbage, hang_up])
async def test_a_request_that_may_have_reached_the_server_is_repeated_only_when_idempotent(
    handler: Handler,
) -> None:
    async with raw_server(handler) as (url, heads):
        # Only `stall` needs the client's timeout (the others answer or hang up at once); it is
        # long enough that a loaded machine still sends each request before it gives up.
        settings = raw_settings(url, timeout=1.0 if handler is stall else 10.0)
        async with AsyncDbtCloudClient(settings) as client:
            with pytest.raises(DbtCloudTransientError, match="after 3 attempt"):
                await client.get_account()
            await heads.settled()
            # A GET is safe to repeat: our three attempts (aiohttp itself may add one per attempt
            # when the server dropped the connection).
            assert len(heads) in (3, 6)
            heads.clear()
            # Starting a run is not: the server read the POST, so it may have started the run.
            trigger = ep.trigger_run(settings, 11, TriggerRunOptions(cause="once"))
            with pytest.raises(DbtCloudTransientError, match="after 1 attempt"):
                await client._send(trigger)
            await heads.settled()
            assert len(heads) == 1
            assert heads[0].startswith(b"POST /api/v2/accounts/7/jobs/11/run/ ")


async def test_a_request_that_never_left_is_repeated_even_when_not_idempotent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with raw_server(hang_up) as (url, _):
        pass  # closed: nothing listens on the port any more
    settings = raw_settings(url)
    async with AsyncDbtCloudClient(settings) as client:
        trigger = ep.trigger_run(settings, 11, TriggerRunOptions(cause="refused"))
        with pytest.raises(DbtCloudTransientError, match="after 3 attempt") as caught:
            await client._send(trigger)
    assert "ClientConnectorError" in str(caught.value)
    assert caplog.text.count("retrying in") == 2


async def test_cancelling_a_request_does_not_poison_the_connection() -> None:
    async def stall_then_answer(reader: _Recording, writer: asyncio.StreamWriter) -> None:
        await reader.request()
        if len(reader.heads) == 1:
            await asyncio.sleep(3)  # the first request never gets its answer
            return
        writer.write(OK)
        await writer.drain()

    async with (
        raw_server(stall_then_answer) as (url, heads),
        AsyncDbtCloudClient(raw_settings(url)) as client,
    ):
        task = asyncio.create_task(client.get_account())
        for _ in range(500):  # until the server has read the request
            if heads:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Half an exchange sat on that connection: the next request must not read its leftovers.
        assert (await client.get_account()).id == 7
        assert len(heads) == 2


# --- proxies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "ftp"])
def test_an_unsupported_proxy_is_a_config_error_without_its_password(
    emulator: DbtCloudEmulator, scheme: str
) -> None:
    settings = settings_for(emulator, proxies={"https": f"{scheme}://me:pr0xy-pw@127.0.0.1:1080"})
    with pytest.raises(DbtCloudConfigError, match=scheme) as caught:
        AsyncDbtCloudClient(settings)
    assert "pr0xy-pw" not in str(caught.value)
    assert "pr0xy-pw" not in repr(caught.value)


async def test_async_client_tunnels_through_an_authenticating_proxy_on_one_connection(
    any_emulator: DbtCloudEmulator,
) -> None:
    with ForwardProxy(user="me@corp", password="pr0xy-pw") as proxy:
        settings = settings_for(any_emulator, proxies={"https": proxy.url.replace("me@corp", "me%40corp")})
        async with AsyncDbtCloudClient(settings) as client:
            for _ in range(5):
                assert (await client.get_account()).id == any_emulator.account_id
            assert "pr0xy-pw" not in repr(client)
    emulator_port = str(urlsplit(any_emulator.base_url).port)
    # One CONNECT: every request rode the same tunnel (one TLS connection).
    assert [(r.target.rsplit(":", 1)[1], r.status) for r in proxy.records] == [(emulator_port, 200)]
    assert proxy.records[0].authorization == "Basic bWVAY29ycDpwcjB4eS1wdw=="  # me@corp:pr0xy-pw


def test_sync_client_tunnels_through_the_same_proxy(emulator: DbtCloudEmulator) -> None:
    with ForwardProxy(user="me", password="pr0xy-pw") as proxy:
        settings = settings_for(emulator, proxies={"https": proxy.url})
        with DbtCloudClient(settings) as client:
            assert client.get_account().id == emulator.account_id
    assert [r.status for r in proxy.records] == [200]


async def test_a_proxy_refusing_credentials_is_a_clear_error_without_the_password(
    emulator: DbtCloudEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ForwardProxy(user="me", password="right") as proxy:
        wrong = proxy.url.replace(":right@", ":pr0xy-pw@")
        settings = settings_for(emulator, proxies={"https": wrong})
        async with AsyncDbtCloudClient(settings) as client:
            with pytest.raises(DbtCloudTransientError) as caught:
                await client.get_account()
    message = str(caught.value)
    assert "407" in message
    assert "proxy" in message.lower()
    for text in (message, caplog.text):
        assert "pr0xy-pw" not in text
        assert SECRET_TOKEN not in text
    assert emulator.requests() == []  # nothing reached dbt Cloud


async def test_proxy_from_https_proxy_variable_unless_no_proxy_covers_the_host(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ForwardProxy(user="me", password="pr0xy-pw") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with AsyncDbtCloudClient(settings_for(emulator)) as client:
            assert (await client.get_account()).id == emulator.account_id
        assert [r.status for r in proxy.records] == [200]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with AsyncDbtCloudClient(settings_for(emulator)) as client:
            assert (await client.get_account()).id == emulator.account_id
        assert len(proxy.records) == 1  # the second client went direct


@pytest.fixture
def proxy_certificates(emulator: DbtCloudEmulator, tmp_path: Path) -> tuple[CertificateFiles, Path]:
    """The proxy's own certificate (from another CA) and a bundle trusting both CAs."""
    files = generate_certificates(tmp_path)
    bundle = tmp_path / "both.pem"
    bundle.write_bytes(files.ca_cert.read_bytes() + Path(emulator.ca_cert_path).read_bytes())
    return files, bundle


async def test_async_client_tunnels_through_an_https_proxy_it_verifies(
    emulator: DbtCloudEmulator, proxy_certificates: tuple[CertificateFiles, Path]
) -> None:
    files, bundle = proxy_certificates
    with ForwardProxy(user="me", password="pr0xy-pw", tls=server_ssl_context(files)) as proxy:
        settings = settings_for(emulator, proxies={"https": proxy.url}, verify=str(bundle))
        async with AsyncDbtCloudClient(settings) as client:
            assert (await client.get_account()).id == emulator.account_id
        assert [r.status for r in proxy.records] == [200]
        assert proxy.records[0].authorization == "Basic bWU6cHIweHktcHc="
        # The emulator's CA alone does not trust the proxy's certificate: the TLS hop to the proxy
        # is verified with the same trust as the API.
        untrusting = settings_for(emulator, proxies={"https": proxy.url}, retry=RetryPolicy.disabled())
        async with AsyncDbtCloudClient(untrusting) as client:
            with pytest.raises(Exception, match="not trusted"):
                await client.get_account()
    assert len(proxy.records) == 1
