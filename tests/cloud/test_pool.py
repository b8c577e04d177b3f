"""The per-loop shared aiohttp session: sharing, per-request tokens, lifetime, SSL and lookup caches."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import pytest
from support.dbt_cloud_client import SECRET_TOKEN, settings_for
from support.forward_proxy import ForwardProxy

from airflow_dbt_provider.cloud import AsyncDbtCloudClient, DbtCloudAuthError, DbtCloudConfigError
from airflow_dbt_provider.cloud.pool import MAX_CONNECTIONS_PER_HOST, LoopCache, loop_pool, ssl_context
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator


async def test_clients_of_one_host_share_one_session_but_send_their_own_token(
    emulator: DbtCloudEmulator,
) -> None:
    good = AsyncDbtCloudClient(settings_for(emulator))
    wrong = AsyncDbtCloudClient(settings_for(emulator, token=SECRET_TOKEN + "-revoked"))
    assert (await good.get_account()).id == emulator.account_id
    with pytest.raises(DbtCloudAuthError):
        await wrong.get_account()
    assert (await good.get_account()).id == emulator.account_id  # the wrong token did not stick
    pool = loop_pool()
    assert len(pool) == 1
    assert good._session is wrong._session
    session = good._session
    assert session is not None
    await good.aclose()
    assert len(pool) == 1  # still leased by the other client
    await wrong.aclose()
    assert len(pool) == 0
    assert session.closed  # the last lease closed its connections


async def test_a_herd_of_clients_shares_one_session_and_bounded_connections(
    emulator: DbtCloudEmulator,
) -> None:
    with ForwardProxy() as proxy:  # it sees one CONNECT per connection the herd opens
        settings = settings_for(emulator, proxies={"https": proxy.url})
        clients = [AsyncDbtCloudClient(settings) for _ in range(80)]
        accounts = await asyncio.gather(*(c.get_account() for c in clients))
        assert {a.id for a in accounts} == {emulator.account_id}
        assert len({id(c._session) for c in clients}) == 1
        assert 1 <= len(proxy.records) <= MAX_CONNECTIONS_PER_HOST
        # Polled one after the other, the herd reuses the warm connections it opened.
        opened = len(proxy.records)
        for client in clients:
            await client.get_account()
        assert len(proxy.records) == opened
        await asyncio.gather(*(c.aclose() for c in clients))
    assert len(loop_pool()) == 0


async def test_clients_with_other_wire_settings_share_the_loops_one_session(
    emulator: DbtCloudEmulator,
) -> None:
    async with (
        AsyncDbtCloudClient(settings_for(emulator)) as a,
        AsyncDbtCloudClient(settings_for(emulator, timeout=5.0, verify=False)) as b,
    ):
        assert a._session is b._session
        assert (await a.get_account()).id == (await b.get_account()).id
        assert len(loop_pool()) == 1
    assert len(loop_pool()) == 0


async def test_closing_an_unused_client_and_closing_twice_are_harmless(emulator: DbtCloudEmulator) -> None:
    client = AsyncDbtCloudClient(settings_for(emulator))
    await client.aclose()
    async with client:
        assert (await client.get_account()).id == emulator.account_id
    await client.aclose()
    assert len(loop_pool()) == 0
    assert (await client.get_account()).id == emulator.account_id  # leases again after a close
    await client.aclose()
    assert len(loop_pool()) == 0


async def test_client_and_pool_reprs_hold_no_token_or_proxy_password(emulator: DbtCloudEmulator) -> None:
    settings = settings_for(emulator, proxies={"all": "http://me:pr0xy-pw@127.0.0.1:9"})
    async with AsyncDbtCloudClient(settings) as client:
        for text in (repr(client), repr(loop_pool()), repr(client._session), repr(client._proxy)):
            assert SECRET_TOKEN not in text
            assert "pr0xy-pw" not in text


def test_ssl_contexts_are_cached_per_ca_file_and_rebuilt_when_it_changes(
    emulator: DbtCloudEmulator, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(str(emulator.ca_cert_path)).read_bytes())
    first = ssl_context(str(ca))
    assert ssl_context(str(ca)) is first
    ca.write_bytes(ca.read_bytes() + b"\n")
    os.utime(ca, ns=(1, 1))
    assert ssl_context(str(ca)) is not first
    insecure = ssl_context(False)  # verify off: neither the certificate nor the host is checked
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_NONE, False)


@pytest.fixture
def ca_copy(emulator: DbtCloudEmulator, tmp_path: Path) -> Path:
    ca = tmp_path / "gone.pem"
    ca.write_bytes(Path(str(emulator.ca_cert_path)).read_bytes())
    return ca


async def test_an_unreadable_ca_bundle_is_a_config_error_naming_it(
    emulator: DbtCloudEmulator, ca_copy: Path
) -> None:
    client = AsyncDbtCloudClient(settings_for(emulator, verify=str(ca_copy)))
    await asyncio.to_thread(ca_copy.unlink)
    with pytest.raises(DbtCloudConfigError, match=r"gone\.pem"):
        await client.get_account()
    assert len(loop_pool()) == 0
    pem = await asyncio.to_thread(Path(str(emulator.ca_cert_path)).read_bytes)
    await asyncio.to_thread(ca_copy.write_bytes, pem)
    assert (await client.get_account()).id == emulator.account_id  # the failure was not kept
    await client.aclose()


async def test_loop_cache_shares_one_lookup_and_never_keeps_failures() -> None:
    calls: list[str] = []

    async def load(value: str) -> str:
        calls.append(value)
        await asyncio.sleep(0.01)
        if value == "bad":
            raise LookupError("no such connection")
        return value.upper()

    cache: LoopCache[str, str] = LoopCache(ttl=60.0)
    assert await asyncio.gather(*(cache.get("a", lambda: load("a")) for _ in range(20))) == ["A"] * 20
    assert calls == ["a"]
    assert await cache.get("a", lambda: load("a")) == "A"
    assert calls == ["a"]
    for _ in range(2):
        with pytest.raises(LookupError):
            await cache.get("k", lambda: load("bad"))
    assert calls == ["a", "bad", "bad"]
    cache.forget("a")
    assert await cache.get("a", lambda: load("a")) == "A"
    assert calls == ["a", "bad", "bad", "a"]


async def test_loop_cache_entries_expire() -> None:
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        return calls

    cache: LoopCache[str, int] = LoopCache(ttl=0.0)
    assert await cache.get("k", load) == 1
    assert await cache.get("k", load) == 2
