"""The per-loop shared HTTP pool: sharing, per-request tokens, lifetime, SSL and lookup caches."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import pytest
from support.dbt_cloud_client import SECRET_TOKEN, settings_for

from airflow_dbt_provider.cloud import AsyncDbtCloudClient, DbtCloudAuthError, DbtCloudConfigError
from airflow_dbt_provider.cloud.pool import MAX_LANES, LoopCache, PoolKey, loop_pool, ssl_context
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator


async def test_clients_of_one_host_share_one_transport_but_send_their_own_token(
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
    assert good._shared is wrong._shared
    assert good._shared is not None
    assert good._shared.lanes == 1  # sequential requests reuse one warm connection
    await good.aclose()
    assert len(pool) == 1  # still leased by the other client
    shared = wrong._shared
    await wrong.aclose()
    assert len(pool) == 0
    assert shared.lanes == 0  # the last lease closed its connections


async def test_a_herd_of_clients_builds_one_transport_and_bounded_lanes(emulator: DbtCloudEmulator) -> None:
    clients = [AsyncDbtCloudClient(settings_for(emulator)) for _ in range(40)]
    accounts = await asyncio.gather(*(c.get_account() for c in clients))
    assert {a.id for a in accounts} == {emulator.account_id}
    shared = {id(c._shared) for c in clients}
    assert len(shared) == 1
    assert clients[0]._shared is not None
    assert 1 <= clients[0]._shared.lanes <= MAX_LANES
    await asyncio.gather(*(c.aclose() for c in clients))
    assert len(loop_pool()) == 0


async def test_different_wire_settings_get_different_transports(emulator: DbtCloudEmulator) -> None:
    async with (
        AsyncDbtCloudClient(settings_for(emulator)) as a,
        AsyncDbtCloudClient(settings_for(emulator, timeout=5.0)) as b,
    ):
        assert a._shared is not b._shared
        assert len(loop_pool()) == 2
    assert len(loop_pool()) == 0


async def test_closing_an_unused_client_and_closing_twice_are_harmless(emulator: DbtCloudEmulator) -> None:
    client = AsyncDbtCloudClient(settings_for(emulator))
    await client.aclose()
    async with client:
        assert (await client.get_account()).id == emulator.account_id
    await client.aclose()
    assert len(loop_pool()) == 0


def test_pool_key_and_reprs_hold_no_secret() -> None:
    key = PoolKey(
        base_url="https://ab1.us1.dbt.com",
        verify=True,
        proxy="http://me:pr0xy-pw@proxy:3128",
        timeout=30.0,
        user_agent="ua",
    )
    assert "pr0xy-pw" not in repr(key)
    assert key == PoolKey("https://ab1.us1.dbt.com", True, "http://me:pr0xy-pw@proxy:3128", 30.0, "ua")
    assert key != PoolKey("https://ab1.us1.dbt.com", True, None, 30.0, "ua")


async def test_transport_and_pool_reprs_hold_no_token_or_proxy_password(emulator: DbtCloudEmulator) -> None:
    settings = settings_for(emulator, proxies={"all": "http://me:pr0xy-pw@127.0.0.1:9"})
    client = AsyncDbtCloudClient(settings)
    pool = loop_pool()
    shared = await pool.acquire(client._key)
    try:
        for text in (repr(client), repr(client._key), repr(shared), repr(pool)):
            assert SECRET_TOKEN not in text
            assert "pr0xy-pw" not in text
    finally:
        await pool.release(client._key)


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
