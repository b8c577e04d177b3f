"""A small client for Airflow 3's REST API v2, the way a user or an operator drives a deployment.

Why our own and not ``apache-airflow-client``: the end-to-end suite must observe Airflow only
through its public surface (DAG runs, task states, XComs, task logs, assets, connections) and
never by reading the metadata database, and it needs patient, explicit waits with failure
messages that say what the deployment was doing. A thin ``httpx`` wrapper does both in a page.

The bearer token comes from the simple auth manager (``POST /auth/token`` with a user name and
password) and is renewed once when the API answers 401. Neither the password nor the token ever
appears in a repr, log line or exception message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

#: Task instance states after which nothing changes without an outside action.
TERMINAL_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: DAG run states after which the run is over.
TERMINAL_RUN_STATES = frozenset({"success", "failed"})

T = TypeVar("T")


class AirflowApiError(RuntimeError):
    """The API answered with an error status; carries the status and Airflow's ``detail``."""

    def __init__(self, method: str, path: str, status: int, detail: object) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message says what was awaited and what was last seen."""


def _q(segment: str) -> str:
    """Quote one path segment: run ids contain ``:`` and ``+`` (``manual__2024-01-01T00:00:00+00:00``)."""
    return quote(segment, safe="")


class AirflowApi:
    """REST API v2 client for one deployment, authenticated as one simple-auth-manager user."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.poll_interval = poll_interval
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"AirflowApi({self.base_url!r}, username={self.username!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def fetch_token(self) -> str:
        """A fresh JWT from the simple auth manager's login endpoint (``POST /auth/token``)."""
        resp = self._http.post("/auth/token", json={"username": self.username, "password": self._password})
        if resp.status_code != 201:
            # The body names the problem ("Invalid credentials") and never echoes the password.
            raise AirflowApiError("POST", "/auth/token", resp.status_code, _detail(resp))
        token = resp.json()["access_token"]
        if not isinstance(token, str):
            raise AirflowApiError("POST", "/auth/token", resp.status_code, "no access_token in the answer")
        return token

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] = (200,),
    ) -> httpx.Response:
        """Send an authenticated request; raise :class:`AirflowApiError` unless the status is expected."""
        if self._token is None:
            self._token = self.fetch_token()
        resp = self._send(method, path, json_body, params, headers)
        if resp.status_code == 401:  # expired or rotated JWT secret: log in again, once
            self._token = self.fetch_token()
            resp = self._send(method, path, json_body, params, headers)
        if resp.status_code not in set(expect):
            raise AirflowApiError(method, path, resp.status_code, _detail(resp))
        return resp

    def _send(
        self,
        method: str,
        path: str,
        json_body: object,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        return self._http.request(
            method, path, json=json_body, params=dict(params or {}), headers=all_headers
        )

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    # -- waiting ----------------------------------------------------------------------------

    def wait_for(
        self,
        what: str,
        probe: Callable[[], T | None],
        *,
        timeout: float,
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Poll ``probe`` until it returns something other than ``None``; fail after ``timeout`` s.

        ``describe`` is called once on timeout to say what the deployment looked like, so a
        failure reads "waited 120 s for X; last seen: Y" rather than a bare timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                seen = describe() if describe else ""
                raise WaitTimeout(
                    f"waited {timeout:.0f}s for {what}" + (f"; last seen: {seen}" if seen else "")
                )
            time.sleep(self.poll_interval)

    # -- monitor ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health``: metadatabase, scheduler, triggerer, dag_processor."""
        resp = self._http.get("/api/v2/monitor/health")  # no auth needed; works before login
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    # -- DAGs -------------------------------------------------------------------------------

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/importErrors", limit=100)["import_errors"])

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG, or ``None`` while the dag-processor has not serialized it yet."""
        resp = self.request("GET", f"/api/v2/dags/{_q(dag_id)}", expect=(200, 404))
        return None if resp.status_code == 404 else dict(resp.json())

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120.0, grace: float = 20.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``.

        Import errors fail the wait early, once they have been present for ``grace`` s without
        the DAG appearing (an error in another file must not fail a DAG that is still queued).
        """
        errors_since: list[float] = []

        def probe() -> dict[str, Any] | None:
            dag = self.dag(dag_id)
            if dag is not None:
                return dag
            errors = self.import_errors()
            if not errors:
                errors_since.clear()
                return None
            errors_since.append(time.monotonic())
            if errors_since[-1] - errors_since[0] >= grace:
                text = "\n".join(f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in errors)
                raise AssertionError(f"DAG {dag_id!r} not parsed; import errors:\n{text}")
            return None

        return self.wait_for(f"DAG {dag_id!r} to be parsed", probe, timeout=timeout)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json_body={"is_paused": paused})

    # -- DAG runs ---------------------------------------------------------------------------

    def trigger_dag_run(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        logical_date: datetime | None = None,
        unpause: bool = True,
    ) -> str:
        """Trigger a manual run (unpausing the DAG first, as a user would) and return its run id.

        Without ``logical_date`` the run has none (Airflow 3's default for manual runs), so
        templates using ``ds`` or the data interval need one.
        """
        if unpause:
            self.set_paused(dag_id, False)
        body: dict[str, Any] = {
            "logical_date": logical_date.isoformat() if logical_date else None,
            "conf": dict(conf or {}),
        }
        if run_id is not None:
            body["dag_run_id"] = run_id
        resp = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json_body=body)
        return str(resp.json()["dag_run_id"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns"
        return list(self.get(path, limit=100, order_by="id")["dag_runs"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def wait_for_dag_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        states: Iterable[str] = TERMINAL_RUN_STATES,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Wait until the run is in one of ``states`` (default: finished) and return it."""
        wanted = set(states)

        def probe() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in wanted else None

        return self.wait_for(
            f"run {dag_id}/{run_id} to reach {sorted(wanted)}",
            probe,
            timeout=timeout,
            describe=lambda: self.describe_run(dag_id, run_id),
        )

    # -- task instances ---------------------------------------------------------------------

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return list(self.get(path, limit=100)["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> dict[str, Any]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return dict(self.get(path))

    def wait_for_task_state(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: Iterable[str],
        *,
        timeout: float = 180.0,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Wait until the task instance is in one of ``states``; return the task instance.

        Fails at once when the task reaches a terminal state that is not wanted (a task that
        failed will not turn ``deferred``), quoting the tail of its log.
        """
        wanted = set(states)

        def probe() -> dict[str, Any] | None:
            ti = self.task_instance(dag_id, run_id, task_id, map_index=map_index)
            state = ti["state"]
            if state in wanted:
                return ti
            if state in TERMINAL_TASK_STATES:
                log = self.task_log_text(dag_id, run_id, task_id, ti["try_number"], map_index=map_index)
                tail = "\n".join(log.splitlines()[-40:])
                raise AssertionError(
                    f"task {dag_id}/{run_id}/{task_id} ended {state!r}, expected {sorted(wanted)}; "
                    f"log tail:\n{tail}"
                )
            return None

        return self.wait_for(
            f"task {dag_id}/{run_id}/{task_id} to reach {sorted(wanted)}",
            probe,
            timeout=timeout,
            describe=lambda: self.describe_run(dag_id, run_id),
        )

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> list[dict[str, Any]]:
        """Mark a task instance ``success``/``failed``/``skipped``, as the UI's "Mark as" does."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        resp = self.request("PATCH", path, json_body={"new_state": state})
        return list(resp.json()["task_instances"])

    def clear_task_instance(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Clear one task instance whatever its state, as the UI's "Clear" does (not a dry run)."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": False,
            "reset_dag_runs": True,
        }
        resp = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances", json_body=body)
        return list(resp.json()["task_instances"])

    def describe_run(self, dag_id: str, run_id: str) -> str:
        """One line per task instance (``task: state (try n)``), for failure messages."""
        try:
            run = self.dag_run(dag_id, run_id)
            tis = self.task_instances(dag_id, run_id)
        except (AirflowApiError, httpx.HTTPError) as exc:
            return f"(could not read the run: {exc})"
        lines = [f"run state {run['state']!r}"]
        lines += [f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})" for ti in tis]
        return "; ".join(lines)

    # -- XCom, logs, links, assets ----------------------------------------------------------

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", *, map_index: int = -1
    ) -> Any:
        """The XCom value as JSON (what the task pushed), read through the API."""
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/xcomEntries/{_q(key)}"
        )
        value = self.get(path, map_index=map_index)["value"]
        if isinstance(value, str):
            # Depending on how the value was stored, the API hands back its JSON text.
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def task_log_text(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, *, map_index: int = -1
    ) -> str:
        """The task's log for one try as plain text: one line per structured log event."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}"
        params = {"full_content": "true", "map_index": map_index}
        content = self.request("GET", path, params=params, headers={"Accept": "application/json"}).json()
        return "\n".join(_log_line(item) for item in content.get("content", []))

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/links"
        return dict(self.get(path)["extra_links"])

    def assets(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/assets", limit=100)["assets"])

    def asset_events(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/assets/events", limit=100, **filters)["asset_events"])

    # -- connections ------------------------------------------------------------------------

    def hook_meta(self) -> list[dict[str, Any]]:
        """The UI's connection form metadata (``GET /ui/connections/hook_meta``)."""
        return list(self.get("/ui/connections/hook_meta"))

    def create_connection(self, connection: Mapping[str, Any]) -> dict[str, Any]:
        resp = self.request("POST", "/api/v2/connections", json_body=dict(connection), expect=(201,))
        return dict(resp.json())

    def delete_connection(self, conn_id: str) -> None:
        self.request("DELETE", f"/api/v2/connections/{_q(conn_id)}", expect=(204, 404))

    def test_connection(self, connection: Mapping[str, Any]) -> tuple[bool, str]:
        """``POST /api/v2/connections/test``: Airflow runs the hook's ``test_connection``."""
        result = self.request("POST", "/api/v2/connections/test", json_body=dict(connection)).json()
        return bool(result["status"]), str(result["message"])


def _detail(resp: httpx.Response) -> object:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    return body.get("detail", body) if isinstance(body, dict) else body


def _log_line(item: object) -> str:
    """Render one structured log event (``{"event": ..., "level": ..., ...}``) as a text line."""
    if not isinstance(item, dict):
        return str(item)
    event = item.get("event", "")
    extras = {k: v for k, v in item.items() if k not in {"event", "timestamp", "level", "logger"}}
    parts = [str(item.get("level", "")).upper(), str(event)]
    if extras:
        parts.append(" ".join(f"{k}={v}" for k, v in extras.items()))
    return " ".join(p for p in parts if p)
