"""The async client (on aiohttp) against the emulator: same settings, TLS, retries as the sync one."""

from __future__ import annotations

import asyncio

import pytest
from support.dbt_cloud_client import settings_for

from airflow_dbt_provider.cloud import (
    AsyncDbtCloudClient,
    DbtCloudAuthError,
    DbtCloudClient,
    DbtCloudNotFoundError,
    DbtCloudTLSError,
    DbtCloudTransientError,
    RetryPolicy,
    RunStatus,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


async def test_polls_a_run_to_completion(any_emulator: DbtCloudEmulator) -> None:
    settings = settings_for(any_emulator)
    with DbtCloudClient(settings) as sync:
        run_id = sync.trigger_run(any_emulator.world.job_ids["success"]).id
    async with AsyncDbtCloudClient(settings) as client:
        assert (await client.get_account()).id == any_emulator.account_id
        for _ in range(300):
            run = await client.get_run(run_id)
            if run.is_terminal:
                break
            await asyncio.sleep(0.2)
        assert run.status is RunStatus.SUCCESS
        assert (await client.get_run(run_id, include_steps=True)).run_steps
        assert "run_results.json" in await client.list_artifacts(run_id)
        assert (await client.get_artifact_json(run_id, "run_results.json"))["results"]
        assert (await client.get_artifact(run_id, "manifest.json")).startswith(b"{")
        assert [r.id for r in await client.list_runs(job_id=run.job_id, limit=1)] == [run_id]
        assert client.run_url(run).startswith(any_emulator.base_url)


async def test_cancel(emulator: DbtCloudEmulator) -> None:
    settings = settings_for(emulator)
    with DbtCloudClient(settings) as sync:
        run_id = sync.trigger_run(emulator.world.job_ids["long"]).id
    async with AsyncDbtCloudClient(settings) as client:
        await client.cancel_run(run_id)
        for _ in range(300):
            if (run := await client.get_run(run_id)).is_terminal:
                break
            await asyncio.sleep(0.2)
        assert run.status is RunStatus.CANCELLED


@pytest.fixture
def no_ca_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the default trust store, which does not hold the emulator's CA."""
    for name in CA_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_ca_variables")
async def test_verify_off_reaches_a_server_whose_ca_is_not_trusted(emulator: DbtCloudEmulator) -> None:
    # With verify on, the same server is a TLS error: test_untrusted_certificate_is_a_tls_error.
    async with AsyncDbtCloudClient(settings_for(emulator, verify=False)) as client:
        assert (await client.get_account()).id == emulator.account_id


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
@pytest.mark.usefixtures("no_ca_variables")
async def test_trusts_the_emulator_ca_from_only_an_environment_variable(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, str(emulator.ca_cert_path))
    async with AsyncDbtCloudClient(settings_for(emulator, verify=True)) as client:
        assert (await client.get_account()).id == emulator.account_id


@pytest.mark.usefixtures("no_ca_variables")
async def test_untrusted_certificate_is_a_tls_error(emulator: DbtCloudEmulator) -> None:
    async with AsyncDbtCloudClient(settings_for(emulator, verify=True)) as client:
        with pytest.raises(DbtCloudTLSError, match="not trusted"):
            await client.get_account()


async def test_retries_honour_retry_after_and_give_up_clearly(emulator: DbtCloudEmulator) -> None:
    emulator.inject_fault(kind="status", status=429, retry_after=1.0, path="/api/v2/accounts/*/", count=1)
    emulator.inject_fault(kind="reset", path="/api/v2/accounts/*/", count=1)
    async with AsyncDbtCloudClient(settings_for(emulator)) as client:
        assert (await client.get_account()).id == emulator.account_id
    log = [r for r in emulator.requests() if r.path.endswith(f"/accounts/{emulator.account_id}/")]
    assert [r.status for r in log] == [429, 0, 200]
    assert log[1].time - log[0].time >= 1.0
    emulator.inject_fault(kind="status", status=502, path="*/runs/*", count=10)
    policy = RetryPolicy(max_attempts=2, backoff_base=0.01)
    async with AsyncDbtCloudClient(settings_for(emulator, retry=policy)) as client:
        with pytest.raises(DbtCloudTransientError, match=r"HTTP 502 for run 5 .* after 2 attempt"):
            await client.get_run(5)


async def test_errors_match_the_sync_client(emulator: DbtCloudEmulator) -> None:
    async with AsyncDbtCloudClient(settings_for(emulator)) as client:
        with pytest.raises(DbtCloudNotFoundError, match="run 424242"):
            await client.get_run(424242)
    async with AsyncDbtCloudClient(settings_for(emulator, token="bad")) as client:
        with pytest.raises(DbtCloudAuthError, match="401"):
            await client.get_account()
