"""Run progress in emulated time, scripted outcomes from a config, and config validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.emulator_client import make_client, wait_for_run

from airflow_dbt_provider.testing.dbt_cloud_emulator import ConfigError, DbtCloudEmulator
from airflow_dbt_provider.testing.dbt_cloud_emulator.clock import EmulatedClock, SpeedError
from airflow_dbt_provider.testing.dbt_cloud_emulator.config import parse_config
from airflow_dbt_provider.testing.dbt_cloud_emulator.state import State, partial_log, progress


class FakeWall:
    """A wall clock the test moves by hand, so progress checks involve no real waiting."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


SCRIPTED: dict[str, Any] = {
    "accounts": [{"id": 7, "name": "acme", "projects": [{"id": 8, "name": "p", "environments": [
        {"id": 9, "name": "prod", "jobs": [
            {"id": 11, "key": "flaky", "name": "flaky", "runs": [
                {"status": "error", "queued_seconds": 2, "starting_seconds": 3, "status_message": "boom",
                 "steps": [{"name": "a", "duration_seconds": 5, "logs": "l1\nl2\nl3\nl4\n"},
                           {"name": "b", "duration_seconds": 5, "status": "error", "logs": "bad\n",
                            "artifacts": {"run_results.json": {"content": {"results": []}},
                                          "notes.txt": {"content": "hello"},
                                          "run/p/seeds/raw.csv": {"content": "id\n1\n"}}},
                           {"name": "never", "duration_seconds": 5}]},
                {"status": "success", "steps": [{"name": "ok", "duration_seconds": 1}]},
            ]},
            {"id": 12, "key": "stopped", "name": "stopped", "runs": [{"status": "cancelled"}]},
        ]}]}]}],
}  # fmt: skip


def make_state(speed: float = 1.0) -> tuple[State, FakeWall]:
    wall = FakeWall()
    clock = EmulatedClock(speed, wall=wall)
    return State(parse_config(SCRIPTED), clock, "t", wall), wall


def test_progress_follows_the_script_in_emulated_time() -> None:
    state, wall = make_state(speed=2.0)
    run = state.start_run(state.jobs[11], "c", "api", {})
    seen = []
    for _ in range(12):  # 12 x 1 real s at speed 2 = 24 emulated s > 2 + 3 + 5 + 5
        prog = progress(run, state.clock.now())
        seen.append((prog.status, [(s.script.name, s.status) for s in prog.steps]))
        wall.now += 1.0
    assert seen[0] == (1, [])  # queued for 2 emulated s = 1 real s
    assert seen[1] == (2, [])  # starting
    assert seen[3] == (3, [("a", 3)])
    assert seen[6] == (3, [("a", 10), ("b", 3)])
    assert seen[-1] == (20, [("a", 10), ("b", 20)])  # "never" is skipped after the failure
    final = progress(run, state.clock.now())
    assert final.finished == pytest.approx(run.created + 15)


def test_speed_change_keeps_progress_and_timestamps_consistent() -> None:
    state, wall = make_state(speed=1.0)
    run = state.start_run(state.jobs[11], "c", "api", {})
    wall.now += 4.0  # 4 emulated s: starting
    before = state.clock.now()
    state.clock.set_speed(10.0)
    assert state.clock.now() == pytest.approx(before)  # no jump
    wall.now += 1.0  # +10 emulated s
    prog = progress(run, state.clock.now())
    assert prog.status == 3
    assert prog.started is not None
    # Started at emulated 5 s: 1 real s after the start at speed 1.
    assert state.clock.wall_time(prog.started) == pytest.approx(FakeWall().now + 5.0)


def test_cancel_while_queued_and_while_running() -> None:
    state, wall = make_state()
    queued = state.start_run(state.jobs[11], "c", "api", {})
    state.cancel(queued)
    prog = progress(queued, state.clock.now())
    assert (prog.status, prog.started, prog.steps) == (30, None, ())
    state, wall = make_state()  # fresh: the job's first script (the 15 s failing one) again
    running = state.start_run(state.jobs[11], "c", "api", {})
    wall.now += 7.0
    state.cancel(running)
    wall.now += 100.0
    prog = progress(running, state.clock.now())
    assert prog.status == 30
    assert [(s.script.name, s.status) for s in prog.steps] == [("a", 30)]
    state.cancel(running)  # cancelling a finished run changes nothing
    assert progress(running, state.clock.now()).finished == prog.finished


def test_running_step_logs_grow() -> None:
    assert partial_log("1\n2\n3\n4\n", 0.5) == "1\n2\n"
    assert partial_log("1\n2\n", 1.0) == "1\n2\n"
    state, wall = make_state()
    run = state.start_run(state.jobs[11], "c", "api", {})
    wall.now += 7.5  # half-way through step "a"
    step = progress(run, state.clock.now()).steps[0]
    assert partial_log(step.script.logs, step.log_fraction) == "l1\nl2\n"


def test_scripted_runs_over_http(tmp_path: Path) -> None:
    config_file = tmp_path / "world.json"
    config_file.write_text(json.dumps(SCRIPTED))
    with DbtCloudEmulator(config=config_file, speed=50) as emu, make_client(emu) as client:
        assert emu.world.job_ids == {"flaky": 11, "stopped": 12}
        assert emu.account_id == 7
        first = client.post("/api/v2/accounts/7/jobs/11/run/", json={"cause": "1"}).json()["data"]["id"]
        run = wait_for_run(client, 7, first)
        assert (run["status"], run["status_message"]) == (20, "boom")
        arts = client.get(f"/api/v2/accounts/7/runs/{first}/artifacts/").json()["data"]
        assert arts == ["notes.txt", "run/p/seeds/raw.csv", "run_results.json"]
        nested = client.get(f"/api/v2/accounts/7/runs/{first}/artifacts/run/p/seeds/raw.csv")
        assert nested.text == "id\n1\n"
        text = client.get(f"/api/v2/accounts/7/runs/{first}/artifacts/notes.txt")
        assert (text.text, text.headers["content-type"]) == ("hello", "text/plain; charset=utf-8")
        retry = client.post(f"/api/v2/accounts/7/runs/{first}/retry/").json()["data"]["id"]
        assert wait_for_run(client, 7, retry)["status"] == 10  # the second script: success
        stopped = client.post("/api/v2/accounts/7/jobs/12/run/", json={"cause": "1"}).json()["data"]["id"]
        assert wait_for_run(client, 7, stopped)["status"] == 30


def test_default_world_outcomes(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, ids = emu.account_id, emu.world.job_ids
    ok = client.post(f"/api/v2/accounts/{a}/jobs/{ids['success']}/run/", json={"cause": "t"}).json()["data"]
    bad = client.post(f"/api/v2/accounts/{a}/jobs/{ids['fail']}/run/", json={"cause": "t"}).json()["data"]
    long = client.post(f"/api/v2/accounts/{a}/jobs/{ids['long']}/run/", json={"cause": "t"}).json()["data"]
    assert wait_for_run(client, a, ok["id"])["status"] == 10
    assert wait_for_run(client, a, bad["id"])["status"] == 20
    still = client.get(f"/api/v2/accounts/{a}/runs/{long['id']}/").json()["data"]
    assert still["in_progress"] is True  # 10 minutes of emulated dbt build
    assert still["status"] in (1, 2, 3)


def test_set_speed_rejects_nonsense(emu: DbtCloudEmulator) -> None:
    for bad in (0, -1, float("inf"), "fast"):
        with pytest.raises(SpeedError, match="speed must be a number > 0"):
            emu.set_speed(bad)  # type: ignore[arg-type]


def with_job(job: dict[str, Any]) -> dict[str, Any]:
    """A one-account config holding just ``job``."""
    env = {"name": "e", "jobs": [job]}
    return {"accounts": [{"name": "a", "projects": [{"name": "p", "environments": [env]}]}]}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"accounts": []}, "at least one account"),
        ({"accounts": [{"name": "a", "colour": "red"}]}, "unknown field"),
        ({"accounts": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "used twice"),
        ({"accounts": [{"id": "1", "name": "a"}]}, "positive integer"),
        ({"accounts": [{"name": ""}]}, "non-empty string"),
        (with_job({"name": "j", "runs": [{"status": "error"}]}), None),
        (with_job({"name": "j", "runs": [{"status": "error", "steps": [{"name": "s"}]}]}), "needs a step"),
        (with_job({"name": "j", "runs": [{"status": "done"}]}), "must be one of"),
        (with_job({"name": "j", "runs": [{"steps": [{"name": "s", "duration_seconds": -1}]}]}), ">= 0"),
        (
            with_job(
                {"name": "j", "runs": [{"steps": [{"name": "s", "artifacts": {"m.json": {"builtin": "x"}}}]}]}
            ),
            "builtin must be one of",
        ),
        (with_job({"name": "j", "execute_steps": []}), "non-empty list of dbt commands"),
        ({"accounts": [{"name": "a"}], "tokens": [{"token": "t", "accounts": [99]}]}, "unknown account"),
    ],
)
def test_config_errors_name_the_field(config: dict, message: str | None) -> None:
    if message is None:  # a run scripted to fail without steps gets default steps, the last one failing
        world = parse_config(config)
        steps = world.accounts[0].projects[0].environments[0].jobs[0].runs[0].steps
        assert steps[-1].status == "error"
        return
    with pytest.raises(ConfigError, match=message):
        parse_config(config)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        DbtCloudEmulator(config=tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        DbtCloudEmulator(config=bad)


def test_repr_hides_the_token() -> None:
    emu = DbtCloudEmulator(token="super-secret-token")
    assert "super-secret-token" not in repr(emu)
    assert "super-secret-token" not in repr(
        parse_config({"accounts": [{"name": "a"}], "tokens": ["zzz-secret"]})
    )
