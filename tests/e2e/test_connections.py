"""Scenarios 8 and 9: our connection type in Airflow's UI metadata, its test endpoint and form.

The api-server runs the hook's ``test_connection`` in its own process against the dbt Cloud
emulator over HTTPS; the deployment trusts the emulator's self-signed CA only through the
connection's "CA bundle" field, exactly as a user behind a TLS-inspecting proxy would set it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.airflow_api import AirflowApi
from support.airflow_deployment import AirflowDeployment

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = pytest.mark.e2e

CONN_TYPE = "dbt_cloud_api"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _connection(emulator: DbtCloudEmulator, **overrides: Any) -> dict[str, Any]:
    body = {
        "connection_id": "dbt_cloud_e2e",
        "conn_type": CONN_TYPE,
        "host": emulator.base_url,
        "login": str(emulator.account_id),
        "password": emulator.token,
        "extra": json.dumps({"ca_bundle": str(emulator.ca_cert_path)}),
    }
    body.update(overrides)
    return body


def test_hook_meta_describes_our_connection_form(airflow: AirflowApi) -> None:
    meta = {m["connection_type"]: m for m in airflow.hook_meta()}
    ours = meta[CONN_TYPE]
    assert ours["hook_class_name"] == "airflow_dbt_provider.hooks.dbt_cloud.DbtCloudHook"
    fields = ours["standard_fields"]
    assert (fields["host"]["title"], fields["login"]["title"], fields["password"]["title"]) == (
        "Access URL",
        "Account ID",
        "API token",
    )
    assert (fields["port"]["hidden"], fields["port"]["title"]) == (False, "Port (optional)")
    assert fields["url_schema"]["hidden"] is True
    assert fields["login"]["placeholder"].startswith("12345")
    assert {"proxies", "ca_bundle", "verify_ssl", "timeout"} <= set(ours["extra_fields"])
    assert ours["extra_fields"]["ca_bundle"]["schema"]["title"] == "CA bundle"


def test_the_official_provider_loads_beside_ours(airflow: AirflowApi) -> None:
    """During a migration both providers are installed: each keeps its own connection type."""
    packages = {p["package_name"] for p in airflow.get("/api/v2/providers", limit=1000)["providers"]}
    assert {"airflow-dbt-provider", "apache-airflow-providers-dbt-cloud"} <= packages
    meta = {m["connection_type"]: m for m in airflow.hook_meta()}
    assert meta["dbt_cloud"]["hook_class_name"] == "airflow.providers.dbt.cloud.hooks.dbt.DbtCloudHook"
    assert meta[CONN_TYPE]["hook_class_name"] == "airflow_dbt_provider.hooks.dbt_cloud.DbtCloudHook"


def test_connection_test_endpoint_against_the_emulator(
    airflow: AirflowApi, emulator: DbtCloudEmulator
) -> None:
    ok, message = airflow.test_connection(_connection(emulator))
    assert ok, message
    assert str(emulator.account_id) in message

    bad_token = "dbtc_wrong-token-for-e2e"
    ok, message = airflow.test_connection(_connection(emulator, password=bad_token))
    assert not ok
    assert "Authentication failed" in message
    assert "API token" in message
    assert bad_token not in message

    account_path = f"/api/v2/accounts/{emulator.account_id}/"
    calls = [(r.method, r.status) for r in emulator.requests() if r.path == account_path]
    assert calls == [("GET", 200), ("GET", 401)]


# -- scenario 9: the connection form in a real browser ---------------------------------------------


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$ADP_E2E_ARTIFACTS_DIR`` (CI uploads it) or the pytest temp dir."""
    configured = os.environ.get("ADP_E2E_ARTIFACTS_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("e2e-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser_page(airflow_deployment: AirflowDeployment) -> Iterator[Any]:
    """A logged-in page of Debian's Chromium (never a downloaded browser), fresh profile."""
    if not Path(CHROMIUM).exists():
        instruction = (
            f"{CHROMIUM} is missing: run `bash scripts/ensure_system_deps.sh` (installs Debian's "
            "`chromium`; make test runs it)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"UI scenario cannot run in CI: {instruction}")
        pytest.skip(f"!!! UI SCENARIO NOT RUN: {instruction} !!!")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="adp-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            context.set_default_timeout(30_000)
            try:
                page = context.new_page()
                page.goto(f"{airflow_deployment.base_url}/")
                page.get_by_label("Username").fill(airflow_deployment.username)
                page.get_by_label("Password").fill(airflow_deployment.password)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{airflow_deployment.base_url}/")
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _add_connection_in_form(page: Any, base_url: str, emulator: DbtCloudEmulator, conn_id: str) -> Any:
    """Fill and save the "Add Connection" form like a user; return the connection's table row."""
    page.goto(f"{base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").fill("dbt Cloud API")
    page.keyboard.press("Enter")

    # Our relabelled standard fields, with our placeholders. The emulator's port goes in the Port
    # field: Airflow 3.3's row "Test" button posts port=0 for an empty port, which the API refuses.
    host, login, password = (
        dialog.get_by_label("Access URL"),
        dialog.get_by_label("Account ID"),
        dialog.get_by_label("API token"),
    )
    assert host.get_attribute("placeholder") == "https://ab123.us1.dbt.com"
    assert (login.get_attribute("placeholder") or "").startswith("12345")
    assert (password.get_attribute("placeholder") or "").startswith("dbtc_")
    port = dialog.get_by_label("Port (optional)")
    assert (port.get_attribute("placeholder") or "").startswith("443")
    scheme_host, _, emulator_port = emulator.base_url.rpartition(":")
    host.fill(scheme_host)
    port.fill(emulator_port)
    login.fill(str(emulator.account_id))
    password.fill(emulator.token)

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    dialog.locator("#element_ca_bundle").fill(str(emulator.ca_cert_path))
    dialog.get_by_role("button", name="Save").click()
    row = page.get_by_role("row").filter(has_text=conn_id)
    row.wait_for()
    return row


def test_connection_form_in_chromium(
    browser_page: Any,
    airflow_deployment: AirflowDeployment,
    airflow: AirflowApi,
    emulator: DbtCloudEmulator,
    artifacts_dir: Path,
) -> None:
    conn_id = "dbt_cloud_from_ui"
    airflow.delete_connection(conn_id)
    try:
        _add_connection_in_form(browser_page, airflow_deployment.base_url, emulator, conn_id)
        browser_page.screenshot(path=str(artifacts_dir / "connection-form-saved.png"), full_page=True)
        stored = airflow.request("GET", f"/api/v2/connections/{conn_id}").json()
        assert (stored["conn_type"], stored["host"], stored["port"], stored["login"]) == (
            CONN_TYPE,
            emulator.base_url.rpartition(":")[0],
            int(emulator.base_url.rpartition(":")[2]),
            str(emulator.account_id),
        )
        assert stored["password"] != emulator.token  # the API masks it
        assert json.loads(stored["extra"])["ca_bundle"] == str(emulator.ca_cert_path)
        # What the form saved authenticates against the emulator (the API test re-uses the
        # stored, unmasked token because the host is unchanged).
        ok, message = airflow.test_connection({"connection_id": conn_id, "conn_type": CONN_TYPE})
        assert ok, message
    finally:
        airflow.delete_connection(conn_id)


def test_connection_test_button_in_chromium(
    browser_page: Any,
    airflow_deployment: AirflowDeployment,
    airflow: AirflowApi,
    emulator: DbtCloudEmulator,
    artifacts_dir: Path,
) -> None:
    conn_id = "dbt_cloud_ui_test_button"
    airflow.delete_connection(conn_id)
    try:
        row = _add_connection_in_form(browser_page, airflow_deployment.base_url, emulator, conn_id)
        row.get_by_role("button", name="Test Connection").click()
        toast = browser_page.get_by_role("status").filter(has_text="Test Connection")
        toast.first.wait_for()
        browser_page.screenshot(path=str(artifacts_dir / "connection-test-button.png"), full_page=True)
        text = toast.first.inner_text()
        assert "Test Connection Successful" in text, text
    finally:
        airflow.delete_connection(conn_id)
