"""Every API endpoint over real HTTPS, each strict response validated against the spec files.

Strict responses are checked with ``closed=True``: besides matching the spec's schemas they may not
carry a property the spec does not declare.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.dbt_cloud_spec import validate_response
from support.emulator_client import wait_for_run

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

V2 = "/api/v2/accounts/{account_id}"
V3 = "/api/v3/accounts/{account_id}"


def check(response: httpx.Response, version: str, template: str, method: str = "get") -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    validate_response(version, template, method, body, closed=True)
    assert body["status"]["is_success"] is True
    return body


def job_body(emu: DbtCloudEmulator, **overrides: Any) -> dict[str, Any]:
    """A create-job body with every field the spec's HumanReadableJobDefinitionRequest requires."""
    body = {
        "account_id": emu.account_id,
        "project_id": emu.world.project_id,
        "environment_id": emu.world.environment_id,
        "name": "created by a test",
        "execute_steps": ["dbt build"],
        "state": 1,
        "generate_docs": False,
        "run_generate_sources": False,
        "errors_on_lint_failure": True,
        "lifecycle_webhooks": False,
        "run_compare_changes": False,
        "run_lint": False,
        "execution": {"timeout_seconds": 0},
        "settings": {"threads": 4, "target_name": "prod"},
        "triggers": {"github_webhook": False, "schedule": False},
    }
    body.update(overrides)
    return body


def test_accounts_list_and_get(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    body = check(client.get("/api/v2/accounts/"), "v2", "/api/v2/accounts/")
    assert [a["id"] for a in body["data"]] == [emu.account_id]
    assert body["extra"]["pagination"] == {"count": 1, "total_count": 1}
    check(client.get("/api/v3/accounts/"), "v3", "/api/v3/accounts/")
    body = check(client.get(f"/api/v2/accounts/{emu.account_id}/"), "v2", "/api/v2/accounts/{account_id}/")
    assert body["data"]["name"] == "Emulated Analytics"


def test_projects_list_filter_and_get(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, w = emu.account_id, emu.world
    body = check(client.get(f"/api/v3/accounts/{a}/projects/"), "v3", f"{V3}/projects/")
    assert [p["id"] for p in body["data"]] == [w.project_id]
    found = client.get(f"/api/v3/accounts/{a}/projects/", params={"name__icontains": "JAFFLE"}).json()
    assert [p["name"] for p in found["data"]] == [w.project_name]
    assert found["extra"]["filters"]["name__icontains"] == "JAFFLE"
    none = client.get(f"/api/v3/accounts/{a}/projects/", params={"name__icontains": "nope"}).json()
    assert none["data"] == []
    assert none["extra"]["pagination"] == {"count": 0, "total_count": 0}
    body = check(client.get(f"/api/v3/accounts/{a}/projects/{w.project_id}/"), "v3", f"{V3}/projects/{{id}}/")
    assert body["data"]["environments"][0]["name"] == w.environment_name


def test_environments_list_filter_and_get(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, w = emu.account_id, emu.world
    base = f"/api/v3/accounts/{a}/projects/{w.project_id}/environments/"
    template = f"{V3}/projects/{{project_id}}/environments/"
    body = check(client.get(base), "v3", template)
    assert [e["id"] for e in body["data"]] == [w.environment_id]
    exact = check(client.get(base, params={"name": w.environment_name}), "v3", template)
    assert [e["id"] for e in exact["data"]] == [w.environment_id]
    assert client.get(base, params={"name": w.environment_name.lower()}).json()["data"] == []
    fuzzy = client.get(base, params={"name__icontains": "product"}).json()
    assert [e["id"] for e in fuzzy["data"]] == [w.environment_id]
    body = check(client.get(f"{base}{w.environment_id}/"), "v3", f"{template}{{id}}/")
    assert body["data"]["project"]["name"] == w.project_name


def test_jobs_list_filters_and_get(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, w = emu.account_id, emu.world
    template = f"{V2}/jobs/"
    body = check(client.get(f"/api/v2/accounts/{a}/jobs/"), "v2", template)
    assert {j["id"] for j in body["data"]} == set(w.job_ids.values())
    by_name = client.get(f"/api/v2/accounts/{a}/jobs/", params={"name__icontains": "failing"}).json()
    assert [j["id"] for j in by_name["data"]] == [w.job_ids["fail"]]
    by_project = client.get(f"/api/v2/accounts/{a}/jobs/", params={"project_id": w.project_id}).json()
    assert len(by_project["data"]) == 3
    other_env = client.get(f"/api/v2/accounts/{a}/jobs/", params={"environment_id": 1}).json()
    assert other_env["data"] == []
    page = check(client.get(f"/api/v2/accounts/{a}/jobs/", params={"limit": 2, "offset": 2}), "v2", template)
    assert page["extra"]["pagination"] == {"count": 1, "total_count": 3}
    body = check(client.get(f"/api/v2/accounts/{a}/jobs/{w.job_ids['success']}/"), "v2", f"{V2}/jobs/{{id}}/")
    assert body["data"]["name"] == w.job_names["success"]
    assert body["data"]["execute_steps"] == ["dbt deps", "dbt build"]


def test_create_then_delete_job(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a = emu.account_id
    created = check(
        client.post(f"/api/v2/accounts/{a}/jobs/", json=job_body(emu)), "v2", f"{V2}/jobs/", "post"
    )
    job_id = created["data"]["id"]
    assert created["data"]["settings"] == {"threads": 4, "target_name": "prod"}
    assert client.get(f"/api/v2/accounts/{a}/jobs/{job_id}/").status_code == 200
    deleted = client.delete(f"/api/v2/accounts/{a}/jobs/{job_id}/")
    assert deleted.status_code == 204  # the spec: "No response body"
    assert deleted.content == b""
    assert client.get(f"/api/v2/accounts/{a}/jobs/{job_id}/").status_code == 404
    gone = client.get(f"/api/v2/accounts/{a}/jobs/", params={"state": "deleted"}).json()["data"]
    assert [j["id"] for j in gone] == [job_id]
    assert gone[0]["state"] == 2


def test_created_job_runs_to_success(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a = emu.account_id
    job_id = client.post(f"/api/v2/accounts/{a}/jobs/", json=job_body(emu)).json()["data"]["id"]
    run = client.post(f"/api/v2/accounts/{a}/jobs/{job_id}/run/", json={"cause": "t"}).json()["data"]
    assert wait_for_run(client, a, run["id"])["status"] == 10


def test_trigger_run_and_get_run_with_related(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, job_id = emu.account_id, emu.world.job_ids["success"]
    trigger = {"cause": "Triggered by a test", "git_branch": "feature", "steps_override": ["dbt build -s x"]}
    body = check(client.post(f"/api/v2/accounts/{a}/jobs/{job_id}/run/", json=trigger), "v2",
                 f"{V2}/jobs/{{job_id}}/run/", "post")  # fmt: skip
    run = body["data"]
    assert run["status"] == 1
    assert run["in_progress"] is True
    assert run["is_complete"] is False
    assert run["job_definition_id"] == job_id
    assert run["trigger"]["cause"] == "Triggered by a test"
    assert run["trigger"]["steps_override"] == ["dbt build -s x"]
    assert run["git_branch"] == "feature"
    assert run["href"].startswith(f"{emu.base_url}/deploy/{a}/projects/")
    wait_for_run(client, a, run["id"])
    related = "trigger,job,environment,run_steps,debug_logs"
    body = check(client.get(f"/api/v2/accounts/{a}/runs/{run['id']}/", params={"include_related": related}),
                 "v2", f"{V2}/runs/{{id}}/")  # fmt: skip
    done = body["data"]
    assert (done["status"], done["is_success"], done["is_complete"], done["in_progress"]) == (
        10,
        True,
        True,
        False,
    )
    assert done["job"]["name"] == emu.world.job_names["success"]
    assert done["environment"]["name"] == emu.world.environment_name
    assert [s["index"] for s in done["run_steps"]] == [1, 2, 3, 4]
    assert "Completed successfully" in done["run_steps"][-1]["logs"]
    assert done["run_steps"][-1]["debug_logs"]
    bare = client.get(f"/api/v2/accounts/{a}/runs/{run['id']}/").json()["data"]
    assert "run_steps" not in bare
    assert "job" not in bare  # strict: relations only when asked for


def test_list_runs_filters_order_and_pagination(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, ids = emu.account_id, emu.world.job_ids
    runs = [client.post(f"/api/v2/accounts/{a}/jobs/{ids[k]}/run/", json={"cause": k}).json()["data"]["id"]
            for k in ("success", "fail", "success")]  # fmt: skip
    template = f"{V2}/runs/"
    body = check(client.get(f"/api/v2/accounts/{a}/runs/"), "v2", template)
    assert [r["id"] for r in body["data"]] == runs
    desc = client.get(f"/api/v2/accounts/{a}/runs/", params={"order_by": "-id", "limit": 2}).json()
    assert [r["id"] for r in desc["data"]] == runs[::-1][:2]
    assert desc["extra"]["order_by"] == "-id"
    assert desc["extra"]["pagination"] == {"count": 2, "total_count": 3}
    second = client.get(f"/api/v2/accounts/{a}/runs/", params={"order_by": "-id", "limit": 2, "offset": 2})
    assert [r["id"] for r in second.json()["data"]] == [runs[0]]
    by_job = check(client.get(f"/api/v2/accounts/{a}/runs/", params={"job_definition_id": ids["success"]}),
                   "v2", template)  # fmt: skip
    assert [r["id"] for r in by_job["data"]] == [runs[0], runs[2]]
    assert by_job["extra"]["filters"]["job_definition_id"] == ids["success"]
    for run_id in runs:
        wait_for_run(client, a, run_id)
    failed = client.get(f"/api/v2/accounts/{a}/runs/", params={"status": 20}).json()["data"]
    assert [r["id"] for r in failed] == [runs[1]]
    many = client.get(f"/api/v2/accounts/{a}/runs/", params=[("status__in", "10"), ("status__in", "20")])
    assert len(many.json()["data"]) == 3
    bracketed = client.get(f"/api/v2/accounts/{a}/runs/", params={"status__in": "[10]"}).json()["data"]
    assert [r["id"] for r in bracketed] == [runs[0], runs[2]]
    with_steps = check(client.get(f"/api/v2/accounts/{a}/runs/", params={"include_related": "run_steps"}),
                       "v2", template)  # fmt: skip
    assert all(r["run_steps"] for r in with_steps["data"])


def test_list_runs_created_at_range(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    """``created_at__range``: two date-times, bounds included, in every spelling of a list filter."""
    a, job_id = emu.account_id, emu.world.job_ids["success"]
    run = client.post(f"/api/v2/accounts/{a}/jobs/{job_id}/run/", json={"cause": "t"}).json()["data"]
    created = run["created_at"]
    url, template = f"/api/v2/accounts/{a}/runs/", f"{V2}/runs/"
    far = "2999-01-01T00:00:00Z"
    spellings: list[Any] = [
        {"created_at__range": f'["{created}","{far}"]'},
        {"created_at__range": f"{created},{far}"},
        [("created_at__range", created), ("created_at__range", far)],
    ]
    for params in spellings:
        body = check(client.get(url, params=params), "v2", template)
        assert [r["id"] for r in body["data"]] == [run["id"]], params
    before = check(client.get(url, params={"created_at__range": f"2000-01-01T00:00:00Z,{created[:4]}-01-01"}),
                   "v2", template)  # fmt: skip
    assert before["data"] == []
    for bad in ("yesterday,today", created, f"{created},{far},{far}"):
        response = client.get(url, params={"created_at__range": bad})
        assert response.status_code == 400, bad
        assert "created_at__range" in response.json()["data"]


def test_cancel_run(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a = emu.account_id
    run = client.post(f"/api/v2/accounts/{a}/jobs/{emu.world.job_ids['long']}/run/", json={"cause": "t"})
    run_id = run.json()["data"]["id"]
    body = check(client.post(f"/api/v2/accounts/{a}/runs/{run_id}/cancel/"), "v2",
                 f"{V2}/runs/{{run_id}}/cancel/", "post")  # fmt: skip
    cancelled = body["data"]
    assert (cancelled["status"], cancelled["is_cancelled"], cancelled["is_complete"]) == (30, True, True)
    assert cancelled["status_message"] == "Cancelled by user."
    again = client.get(f"/api/v2/accounts/{a}/runs/{run_id}/").json()["data"]
    assert again["status"] == 30


def test_artifacts_list_and_get_per_step(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a = emu.account_id
    run_id = client.post(f"/api/v2/accounts/{a}/jobs/{emu.world.job_ids['success']}/run/",
                         json={"cause": "t"}).json()["data"]["id"]  # fmt: skip
    early = client.get(f"/api/v2/accounts/{a}/runs/{run_id}/artifacts/manifest.json")
    assert early.status_code == 404  # nothing until the run completes, as in dbt Cloud
    wait_for_run(client, a, run_id)
    body = check(client.get(f"/api/v2/accounts/{a}/runs/{run_id}/artifacts/"), "v2",
                 f"{V2}/runs/{{run_id}}/artifacts/")  # fmt: skip
    assert body["data"] == ["manifest.json", "run_results.json"]
    results = client.get(f"/api/v2/accounts/{a}/runs/{run_id}/artifacts/run_results.json")
    assert results.headers["content-type"] == "application/json"
    assert {r["status"] for r in results.json()["results"]} == {"success", "pass"}
    manifest = client.get(f"/api/v2/accounts/{a}/runs/{run_id}/artifacts/manifest.json", params={"step": 4})
    assert "model.jaffle_shop.customers" in manifest.json()["nodes"]
    assert client.get(f"/api/v2/accounts/{a}/runs/{run_id}/artifacts/manifest.json",
                      params={"step": 1}).status_code == 404  # fmt: skip
    latest = client.get(
        f"/api/v2/accounts/{a}/jobs/{emu.world.job_ids['success']}/artifacts/run_results.json"
    )
    assert latest.json() == results.json()


def test_failed_run_retry_and_job_rerun(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a, job_id = emu.account_id, emu.world.job_ids["fail"]
    run_id = client.post(f"/api/v2/accounts/{a}/jobs/{job_id}/run/", json={"cause": "t"}).json()["data"]["id"]
    failed = wait_for_run(client, a, run_id)
    assert (failed["status"], failed["is_error"], failed["can_retry"]) == (20, True, True)
    assert "assert_order_amount_not_negative" in failed["status_message"]
    results = client.get(f"/api/v2/accounts/{a}/runs/{run_id}/artifacts/run_results.json").json()
    assert "fail" in {r["status"] for r in results["results"]}
    details = client.get(f"/api/v2/accounts/{a}/runs/{run_id}/retry/").json()["data"]
    assert details["failed_step"] == "Invoke dbt with `dbt build`"
    body = check(client.post(f"/api/v2/accounts/{a}/runs/{run_id}/retry/"), "v2",
                 f"{V2}/runs/{{run_id}}/retry/", "post")  # fmt: skip
    assert body["data"]["id"] != run_id
    assert body["data"]["job_definition_id"] == job_id
    assert body["data"]["retrying_run_id"] == run_id  # the retry names the run it retries
    assert "retrying_run_id" not in failed  # strict: the spec's field is an integer, never null
    rerun = check(client.post(f"/api/v2/accounts/{a}/jobs/{job_id}/rerun/"), "v2",
                  f"{V2}/jobs/{{job_id}}/rerun/", "post")  # fmt: skip
    assert rerun["data"]["id"] > body["data"]["id"]


def test_retry_of_successful_run_is_400(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a = emu.account_id
    run_id = client.post(f"/api/v2/accounts/{a}/jobs/{emu.world.job_ids['success']}/run/",
                         json={"cause": "t"}).json()["data"]["id"]  # fmt: skip
    wait_for_run(client, a, run_id)
    response = client.post(f"/api/v2/accounts/{a}/runs/{run_id}/retry/")
    assert response.status_code == 400
    assert "RETRY_NOT_FAILED_RUN" in response.json()["status"]["developer_message"]


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token"])
def test_both_auth_schemes(emu: DbtCloudEmulator, scheme: str) -> None:
    verify = str(emu.ca_cert_path)
    r = httpx.get(
        f"{emu.base_url}/api/v2/accounts/", verify=verify, headers={"Authorization": f"{scheme} {emu.token}"}
    )
    assert r.status_code == 200


@pytest.mark.parametrize("header", [None, "Token wrong", "Basic abc", "Token"])
def test_bad_token_is_401_without_echoing_it(emu: DbtCloudEmulator, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.get(f"{emu.base_url}/api/v2/accounts/", verify=str(emu.ca_cert_path), headers=headers)
    assert r.status_code == 401
    assert r.json()["status"]["is_success"] is False
    assert "wrong" not in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/accounts/999/",
        "/api/v2/accounts/{a}/jobs/999/",
        "/api/v2/accounts/{a}/runs/999/",
        "/api/v2/accounts/{a}/runs/abc/",
        "/api/v3/accounts/{a}/projects/999/",
        "/api/v3/accounts/{a}/projects/{p}/environments/999/",
        "/api/v2/accounts/{a}/nothing-here/",
    ],
)
def test_unknown_ids_are_404(emu: DbtCloudEmulator, client: httpx.Client, path: str) -> None:
    r = client.get(path.format(a=emu.account_id, p=emu.world.project_id))
    assert r.status_code == 404
    assert r.json()["status"]["code"] == 404


def test_job_id_used_as_run_id_is_404(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    """Ids of different kinds never overlap, so mixing them up fails loudly."""
    assert (
        client.get(f"/api/v2/accounts/{emu.account_id}/runs/{emu.world.job_ids['success']}/").status_code
        == 404
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "cause"),
        ({"cause": ""}, "cause"),
        ({"cause": "x", "threads_override": "four"}, "threads_override"),
        ({"cause": "x", "steps_override": "dbt run"}, "steps_override"),
        ({"cause": "x", "git_branch": None}, "git_branch"),
    ],
)
def test_invalid_trigger_body_is_400(
    emu: DbtCloudEmulator, client: httpx.Client, body: dict, field: str
) -> None:
    r = client.post(f"/api/v2/accounts/{emu.account_id}/jobs/{emu.world.job_ids['success']}/run/", json=body)
    assert r.status_code == 400
    assert field in r.json()["data"]
    assert emu.requests()[-1].status == 400


def test_strict_mode_accepts_the_nulls_real_dbt_cloud_accepts(
    emu: DbtCloudEmulator, client: httpx.Client
) -> None:
    """The official provider sends ``steps_override``/``schema_override`` as null on every trigger;
    real dbt Cloud runs the job with its own steps and schema, and so does the strict emulator."""
    body = {"cause": "official provider", "steps_override": None, "schema_override": None}
    r = client.post(f"/api/v2/accounts/{emu.account_id}/jobs/{emu.world.job_ids['success']}/run/", json=body)
    assert r.status_code == 200, r.text
    run = check(r, "v2", "/api/v2/accounts/{account_id}/jobs/{job_id}/run/", "post")["data"]
    assert run["trigger"]["cause"] == "official provider"
    assert run["trigger"].get("steps_override") is None  # not set: the job's own steps run


def test_invalid_json_and_job_bodies_are_400(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    a = emu.account_id
    r = client.post(f"/api/v2/accounts/{a}/jobs/{emu.world.job_ids['success']}/run/", content=b"{not json")
    assert r.status_code == 400
    missing = {k: v for k, v in job_body(emu).items() if k not in ("settings", "name")}
    r = client.post(f"/api/v2/accounts/{a}/jobs/", json=missing)
    assert r.status_code == 400
    assert set(r.json()["data"]) == {"settings", "name"}
    r = client.post(f"/api/v2/accounts/{a}/jobs/", json=job_body(emu, environment_id=123))
    assert r.status_code == 400
    assert "environment_id" in r.json()["data"]
    r = client.post(
        f"/api/v2/accounts/{a}/jobs/", json=job_body(emu, settings={"threads": "x", "target_name": "p"})
    )
    assert r.json()["data"] == {"settings.threads": ["A valid integer is required."]}


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"offset": -1}, {"limit": "ten"},
                                    {"order_by": "name"}])  # fmt: skip
def test_bad_list_parameters_are_400(emu: DbtCloudEmulator, client: httpx.Client, params: dict) -> None:
    assert client.get(f"/api/v2/accounts/{emu.account_id}/runs/", params=params).status_code == 400


def test_wrong_method_is_405(emu: DbtCloudEmulator, client: httpx.Client) -> None:
    assert client.put(f"/api/v2/accounts/{emu.account_id}/runs/").status_code == 405
