"""Retries under injected faults, TLS trust, and the token never reaching logs or errors."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import pytest
from support.dbt_cloud_client import SECRET_TOKEN, settings_for

from airflow_dbt_provider.cloud import (
    DbtCloudClient,
    DbtCloudError,
    DbtCloudResponseError,
    DbtCloudTLSError,
    DbtCloudTransientError,
    RetryPolicy,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

ACCOUNT_PATH = "/api/v2/accounts/*/"


def _hits(emulator: DbtCloudEmulator, suffix: str) -> list[int]:
    return [r.status for r in emulator.requests() if r.path.endswith(suffix)]


@pytest.mark.parametrize(
    ("kind", "status"), [("status", 503), ("status", 500), ("status", 429), ("reset", 0)]
)
def test_transient_faults_are_retried_until_success(
    client: DbtCloudClient, emulator: DbtCloudEmulator, kind: str, status: int
) -> None:
    emulator.inject_fault(kind=kind, path=ACCOUNT_PATH, status=status or 503, count=2)
    assert client.get_account().id == emulator.account_id
    assert _hits(emulator, f"/accounts/{emulator.account_id}/") == [status, status, 200]


def test_timeout_is_retried(emulator: DbtCloudEmulator, caplog: pytest.LogCaptureFixture) -> None:
    emulator.inject_fault(kind="slow", path=ACCOUNT_PATH, delay=1.0, count=1)
    with DbtCloudClient(settings_for(emulator, timeout=0.3)) as client:
        assert client.get_account().id == emulator.account_id
    assert "ReadTimeout for account" in caplog.text
    # The emulator logs the slow request once it has answered (to nobody): wait for it, so it
    # cannot land in the next test's log, and check both attempts reached the server.
    deadline = time.monotonic() + 30
    while len(_hits(emulator, f"/accounts/{emulator.account_id}/")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_hits(emulator, f"/accounts/{emulator.account_id}/")) == 2


def test_backoff_honours_retry_after(client: DbtCloudClient, emulator: DbtCloudEmulator) -> None:
    emulator.inject_fault(kind="status", status=429, retry_after=1.2, path=ACCOUNT_PATH, count=1)
    client.get_account()
    first, second = [r for r in emulator.requests() if r.path.endswith(f"/accounts/{emulator.account_id}/")]
    assert first.status == 429
    assert second.status == 200
    assert second.time - first.time >= 1.2  # FAST_RETRY alone would wait at most 0.05 s


def test_exhausted_retries_give_a_clear_error(emulator: DbtCloudEmulator) -> None:
    emulator.inject_fault(kind="status", status=503, path=ACCOUNT_PATH, count=10)
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
    with (
        DbtCloudClient(settings_for(emulator, retry=policy)) as client,
        pytest.raises(DbtCloudTransientError, match=r"HTTP 503 for account \d+ after 3 attempt\(s\)"),
    ):
        client.get_account()
    assert len(_hits(emulator, f"/accounts/{emulator.account_id}/")) == 3


def test_trigger_is_not_repeated_when_dbt_cloud_may_have_received_it(
    client: DbtCloudClient, emulator: DbtCloudEmulator
) -> None:
    job_id = emulator.world.job_ids["success"]
    emulator.inject_fault(kind="status", status=500, path="*/run/", method="POST", count=1)
    with pytest.raises(DbtCloudTransientError, match="HTTP 500"):
        client.trigger_run(job_id)
    assert _hits(emulator, "/run/") == [500]
    emulator.inject_fault(kind="status", status=503, path="*/run/", method="POST", count=1)
    assert client.trigger_run(job_id).job_id == job_id  # 503: not processed, safe to resend
    assert _hits(emulator, "/run/") == [500, 503, 200]


def test_malformed_answer_is_reported(client: DbtCloudClient, emulator: DbtCloudEmulator) -> None:
    emulator.inject_fault(kind="malformed", path=ACCOUNT_PATH, count=1)
    with pytest.raises(DbtCloudResponseError, match="not JSON"):
        client.get_account()


def test_untrusted_certificate_is_a_tls_error_not_retried(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with (
        DbtCloudClient(settings_for(emulator, verify=True)) as client,
        pytest.raises(DbtCloudTLSError, match="CA bundle"),
    ):
        client.get_account()
    assert emulator.requests() == []


def test_sync_client_trusts_the_ca_from_the_environment(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_cert_path))
    with DbtCloudClient(settings_for(emulator, verify=True)) as client:
        assert client.get_account().id == emulator.account_id


def _unused_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{sock.getsockname()[1]}"


def test_token_never_reaches_logs_or_errors(
    emulator: DbtCloudEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drive every failure path with logging at DEBUG everywhere, then search all output."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    settings = settings_for(emulator, retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    with DbtCloudClient(settings) as client:
        texts += [repr(settings), str(settings), repr(client)]
        emulator.inject_fault(kind="status", status=503, path=ACCOUNT_PATH, count=5)
        emulator.inject_fault(kind="reset", path="*/runs/*", count=5)
        for action in (client.get_account, lambda: client.get_run(1), lambda: client.get_job(424242)):
            with pytest.raises(DbtCloudError) as excinfo:
                action()
            texts += [
                str(excinfo.value),
                repr(excinfo.value),
                "".join(traceback.format_exception(excinfo.value)),
            ]
    failing = [
        settings_for(emulator, token="wrong-" + SECRET_TOKEN),
        settings_for(emulator, access_url=_unused_port_url(), retry=RetryPolicy(max_attempts=1)),
    ]
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    failing.append(settings_for(emulator, verify=True))
    for bad in failing:
        with DbtCloudClient(bad) as client, pytest.raises(DbtCloudError) as excinfo:
            client.get_account()
        texts += [str(excinfo.value), "".join(traceback.format_exception(excinfo.value))]
    out, err = capsys.readouterr()
    everything = "\n".join([*texts, caplog.text, out, err, *(str(r.__dict__) for r in caplog.records)])
    assert "retrying" in caplog.text  # the retry path did log
    assert SECRET_TOKEN not in everything


def test_download_failure_leaves_no_partial_file(
    client: DbtCloudClient, emulator: DbtCloudEmulator, tmp_path: Path
) -> None:
    emulator.inject_fault(kind="status", status=404, path="*/artifacts/manifest.json", count=1)
    with pytest.raises(DbtCloudError):
        client.download_artifact(1, "manifest.json", tmp_path / "manifest.json")
    assert list(tmp_path.iterdir()) == []
