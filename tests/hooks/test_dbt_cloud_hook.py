"""DbtCloudHook: connection → settings (ours and the official provider's), test_connection, UI form."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import airflow
import jsonschema
import pytest
from support.dbt_cloud_client import SECRET_TOKEN, connection_json

from airflow_dbt_provider.cloud import DbtCloudClient, DbtCloudConfigError
from airflow_dbt_provider.get_provider_info import DBT_CLOUD_CONNECTION
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

CONN_ID = "dbt_cloud_test"
ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"


def _use(monkeypatch: pytest.MonkeyPatch, value: str, conn_id: str = CONN_ID) -> DbtCloudHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    return DbtCloudHook(dbt_cloud_conn_id=conn_id)


def test_defaults_follow_the_contract() -> None:
    assert DbtCloudHook.conn_type == "dbt_cloud_api"
    assert DbtCloudHook.default_conn_name == "dbt_cloud_api_default"
    assert DbtCloudHook.conn_name_attr == "dbt_cloud_conn_id"
    assert DbtCloudHook().dbt_cloud_conn_id == "dbt_cloud_api_default"


def test_settings_from_our_connection_type(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    extra = {
        "proxies": {"https": "http://proxy:3128"},
        "ca_bundle": str(ca),
        "timeout": "12.5",
        "retry_max_attempts": 7,
        "retry_backoff_base": 0.5,
        "retry_backoff_max": 4,
    }
    hook = _use(
        monkeypatch,
        json.dumps(
            {
                "conn_type": "dbt_cloud_api",
                "host": "ab123.us1.dbt.com",
                "login": "77",
                "password": "tok-123456",
                "extra": extra,
            }
        ),
    )
    settings = hook.get_settings()
    assert (settings.account_id, settings.token, settings.access_url) == (
        77,
        "tok-123456",
        "https://ab123.us1.dbt.com",
    )
    assert settings.proxies == {"https": "http://proxy:3128"}
    assert (settings.verify, settings.timeout) == (str(ca), 12.5)
    assert (settings.retry.max_attempts, settings.retry.backoff_base, settings.retry.backoff_max) == (
        7,
        0.5,
        4.0,
    )


def test_official_provider_connection_is_read_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    official = {
        "conn_type": "dbt_cloud",
        "login": "12345",
        "password": "dbtc_official_token",
        "extra": {"proxies": {"https": "http://corp-proxy:8080"}},
    }
    settings = _use(monkeypatch, json.dumps(official)).get_settings()
    assert settings.account_id == 12345
    assert settings.token == "dbtc_official_token"
    assert settings.access_url == "https://cloud.getdbt.com"  # no host: the official default tenant
    assert settings.proxies == {"https": "http://corp-proxy:8080"}
    tenant = _use(monkeypatch, json.dumps({**official, "host": "emea.dbt.com"})).get_settings()
    assert tenant.access_url == "https://emea.dbt.com"


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"login": "acme"}, "Account ID .* must be a number"),
        ({"password": ""}, "no API token"),
        ({"extra": {"timeout": "soon"}}, "'timeout' must be a number"),
        ({"extra": {"proxies": [1]}}, "proxies must be a JSON object"),
        ({"host": "ftp://x"}, "use https://"),
    ],
)
def test_bad_connections_say_what_to_fix(monkeypatch: pytest.MonkeyPatch, conn: dict, message: str) -> None:
    base = {"conn_type": "dbt_cloud_api", "host": "ab1.us1.dbt.com", "login": "1", "password": "tok-123456"}
    with pytest.raises(DbtCloudConfigError, match=message):
        _use(monkeypatch, json.dumps({**base, **conn})).get_settings()


async def test_aget_settings_resolves_asynchronously(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _use(monkeypatch, connection_json(emulator))
    settings = await hook.aget_settings()
    assert settings.access_url == emulator.base_url
    assert settings.account_id == emulator.account_id
    async with await hook.aget_client() as client:
        assert (await client.get_account()).id == emulator.account_id


def test_get_client_talks_to_dbt_cloud(emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with _use(monkeypatch, connection_json(emulator)).get_client() as client:
        assert isinstance(client, DbtCloudClient)
        assert client.get_account().id == emulator.account_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_test_connection_outcomes(emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = _use(monkeypatch, connection_json(emulator)).test_connection()
    assert ok, message
    assert f"account {emulator.account_id}" in message

    cases = {
        "Authentication failed": connection_json(emulator, password="wrong-" + SECRET_TOKEN),
        "Account not found": connection_json(emulator, login="999"),
        "dbt Cloud unreachable": connection_json(emulator, host=f"https://127.0.0.1:{_free_port()}"),
        "Set the Account ID": connection_json(emulator, login=""),
    }
    for expected, value in cases.items():
        ok, message = _use(monkeypatch, value).test_connection()
        assert not ok, message
        assert message.startswith(expected), message
        assert SECRET_TOKEN not in message

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    untrusted = json.loads(connection_json(emulator))
    del untrusted["extra"]["ca_bundle"]
    ok, message = _use(monkeypatch, json.dumps(untrusted)).test_connection()
    assert not ok
    assert message.startswith("TLS failure")
    assert "CA bundle" in message


def test_connection_form_matches_airflow_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider.yaml.schema.json").read_text())
    jsonschema.validate(DBT_CLOUD_CONNECTION, schema["properties"]["connection-types"]["items"])
    assert DBT_CLOUD_CONNECTION["ui-field-behaviour"]["placeholders"]["host"].startswith("https://")


@pytest.mark.parametrize(
    ("conn_type", "extra_fields", "standard"),
    [
        (
            "dbt_cloud_api",
            set(DBT_CLOUD_CONNECTION["conn-fields"]),
            {"password": "API token", "port": "Port (optional)", "login": "Account ID"},
        ),
        ("dbt_target", {"adapter_type", "target"}, {"login": "User", "url_schema": "dbt schema"}),
    ],
)
def test_the_connection_form_shows_our_fields(
    conn_type: str, extra_fields: set[str], standard: dict[str, str]
) -> None:
    """What the UI's connection form gets: conn-fields on Airflow 3.2+, the hooks' widgets on 3.1."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    # Computed once per process, as the API server does (Airflow 3.1 cannot compute it twice).
    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == conn_type]
    assert set(meta.extra_fields or {}) == extra_fields
    assert meta.standard_fields is not None
    titles = {name: getattr(meta.standard_fields, name).title for name in standard}
    assert titles == standard
    if conn_type == "dbt_cloud_api":
        assert meta.standard_fields.url_schema.hidden
        assert meta.extra_fields["verify_ssl"]["schema"]["type"] in ("boolean", ["boolean", "null"])


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://127.0.0.1", 8443, "https://127.0.0.1:8443"),
        ("https://ab1.us1.dbt.com", None, "https://ab1.us1.dbt.com"),
        ("https://127.0.0.1:9000", 8443, "https://127.0.0.1:9000"),  # the URL's own port wins
        ("emea.dbt.com", 444, "https://emea.dbt.com:444"),
    ],
)
def test_port_field_joins_the_access_url(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int | None, expected: str
) -> None:
    conn = {"conn_type": "dbt_cloud_api", "host": host, "port": port, "login": "1", "password": "tok-1"}
    assert _use(monkeypatch, json.dumps(conn)).get_settings().access_url == expected


def _airflow(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    airflow_bin = Path(sys.executable).parent / "airflow"
    return subprocess.Popen(
        [str(airflow_bin), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=240)
    return process.returncode, stdout, stderr


def test_airflow_cli_lists_the_hook_and_tests_connections(
    emulator: DbtCloudEmulator, airflow_db: Path
) -> None:
    """The three CLI calls run side by side: each one spends most of its time importing Airflow."""
    good_env = {**os.environ, ENV: connection_json(emulator)}
    bad_env = {**os.environ, ENV: connection_json(emulator, password="wrong-" + SECRET_TOKEN)}
    listing = _airflow("providers", "hooks", "--output", "json", env=dict(os.environ))
    good = _airflow("connections", "test", CONN_ID, env=good_env)
    bad = _airflow("connections", "test", CONN_ID, env=bad_env)

    code, stdout, stderr = _finish(listing)
    assert code == 0, stderr
    (hook,) = [h for h in json.loads(stdout) if h.get("connection_type") == "dbt_cloud_api"]
    assert hook["class"] == "airflow_dbt_provider.hooks.dbt_cloud.DbtCloudHook"

    code, stdout, stderr = _finish(good)
    assert code == 0, stdout + stderr
    assert "Connection success!" in stdout

    _, stdout, stderr = _finish(bad)
    output = stdout + stderr
    assert "Connection failed!" in output
    assert "Authentication failed" in output
    assert "API token" in output
    assert SECRET_TOKEN not in output
