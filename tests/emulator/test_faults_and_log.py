"""Fault injection (in process and over HTTP) and the request log."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from support.emulator_client import make_client

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator, FaultError


def run_path(emu: DbtCloudEmulator, key: str = "success") -> str:
    return f"/api/v2/accounts/{emu.account_id}/jobs/{emu.world.job_ids[key]}/run/"


def test_request_log_counts_exactly_one_trigger(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    client.post(run_path(emu), json={"cause": "once"})
    client.get("/api/v2/accounts/", params={"limit": "5"})
    log = emu.requests()
    triggers = [r for r in log if r.method == "POST" and r.path.endswith("/run/")]
    assert len(triggers) == 1
    assert triggers[0].body == {"cause": "once"}
    assert triggers[0].status == 200
    assert log[1].query == {"limit": ["5"]}
    assert log[0].time <= log[1].time <= time.time()


def test_status_fault_with_retry_after_then_recovers(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    emu.inject_fault(kind="status", status=429, retry_after=2, path="/api/v2/accounts/*/jobs/*/run/", count=2)
    first, second, third = (client.post(run_path(emu), json={"cause": "x"}) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["retry-after"] == "2"
    assert first.json()["status"]["is_success"] is False
    assert [r.status for r in emu.requests()] == [429, 429, 200]


def test_fault_only_hits_matching_method_and_path(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    emu.inject_fault(kind="status", status=503, method="POST", path="*/run/", count=1)
    assert client.get("/api/v2/accounts/").status_code == 200
    assert client.post(run_path(emu), json={"cause": "x"}).status_code == 503
    assert client.post(run_path(emu), json={"cause": "x"}).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_bursts(emu: DbtCloudEmulator, client: httpx.Client, status: int) -> None:
    emu.inject_fault(kind="status", status=status, count=3)
    codes = [client.get("/api/v2/accounts/").status_code for _ in range(4)]
    assert codes == [status, status, status, 200]


def test_reset_fault_drops_the_connection(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    emu.inject_fault(kind="reset", path="/api/v2/accounts/")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        client.get("/api/v2/accounts/")
    assert client.get("/api/v2/accounts/").status_code == 200
    assert [r.status for r in emu.requests()] == [0, 200]


def test_malformed_fault_sends_broken_json(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    emu.inject_fault(kind="malformed")
    response = client.get("/api/v2/accounts/")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_slow_fault_delays_then_answers(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    emu.inject_fault(kind="slow", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/api/v2/accounts/", timeout=0.2)
    emu.inject_fault(kind="slow", delay=0.2)
    assert client.get("/api/v2/accounts/").status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "explode"}, "kind must be one of"),
        ({"kind": "status", "status": 200}, "status must be an HTTP error code"),
        ({"kind": "status", "count": 0}, "count must be a positive integer"),
        ({"kind": "slow", "delay": -1}, "delay must be a number"),
        ({"kind": "reset", "path": "api/v2"}, "path must be an fnmatch pattern"),
    ],
)
def test_bad_fault_arguments_say_what_is_wrong(emu: DbtCloudEmulator, kwargs: dict, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        emu.inject_fault(**kwargs)


def test_control_surface_over_http(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    with httpx.Client(base_url=emu.base_url, verify=str(emu.ca_cert_path)) as control:  # no token needed
        added = control.post("/_emulator/faults", json={"kind": "status", "status": 502, "count": 1})
        assert added.status_code == 200
        assert control.get("/_emulator/faults").json()["faults"][0]["status"] == 502
        assert client.get("/api/v2/accounts/").status_code == 502
        assert control.get("/_emulator/faults").json()["faults"] == []
        bad = control.post("/_emulator/faults", json={"kind": "nope"})
        assert bad.status_code == 400
        assert "kind must be one of" in bad.json()["error"]
        client.post(run_path(emu), json={"cause": "x"})
        logged = control.get("/_emulator/requests").json()["requests"]
        assert [(r["method"], r["status"]) for r in logged] == [("GET", 502), ("POST", 200)]
        assert logged[1]["body"] == {"cause": "x"}
        assert control.post("/_emulator/speed", json={"speed": 5}).json() == {"speed": 5.0}
        assert emu.speed == 5.0
        assert control.post("/_emulator/speed", json={"speed": 0}).status_code == 400
        assert control.get("/_emulator/world").json()["job_ids"] == emu.world.job_ids
        assert control.post("/_emulator/reset").status_code == 200
        assert control.get("/_emulator/requests").json()["requests"] == []
        assert control.get("/_emulator/nothing").status_code == 404


def test_reset_restores_the_seeded_world(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    run_id = client.post(run_path(emu), json={"cause": "x"}).json()["data"]["id"]
    emu.inject_fault(kind="status", count=5, path="/never/*")
    emu.reset()
    assert emu.requests() == []
    assert client.get(f"/api/v2/accounts/{emu.account_id}/runs/{run_id}/").status_code == 404
    assert client.get(f"/api/v2/accounts/{emu.account_id}/runs/").json()["data"] == []
    again = client.post(run_path(emu), json={"cause": "x"}).json()["data"]["id"]
    assert again == run_id  # ids restart, so tests see the same ids every time


def test_tokens_from_config_are_scoped_to_accounts() -> None:
    config = {
        "accounts": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "tokens": ["any-account", {"token": "only-two", "accounts": [2]}],
    }
    with DbtCloudEmulator(config=config, https=False) as emu:
        for token, visible in [("any-account", [1, 2]), ("only-two", [2]), (emu.token, [1, 2])]:
            with make_client(emu, token) as c:
                assert [a["id"] for a in c.get("/api/v2/accounts/").json()["data"]] == visible
        with make_client(emu, "only-two") as c:
            assert c.get("/api/v2/accounts/1/").status_code == 403
        assert emu.base_url.startswith("http://")
        assert emu.ca_cert_path is None
