"""Settings normalization, transport resolution, retry policy and trigger options (no network)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pendulum
import pytest

from airflow_dbt_provider.cloud import (
    ClientSettings,
    DbtCloudConfigError,
    RetryPolicy,
    Run,
    RunStatus,
    TriggerRunOptions,
)
from airflow_dbt_provider.cloud.models import parse_datetime, parse_duration_seconds
from airflow_dbt_provider.cloud.retry import is_retryable_status, parse_retry_after
from airflow_dbt_provider.cloud.settings import normalize_access_url, resolve_transport

TOKEN = "dbtc_settings_secret_token"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://cloud.getdbt.com"),
        ("ab123.us1.dbt.com", "https://ab123.us1.dbt.com"),
        ("https://emea.dbt.com/", "https://emea.dbt.com"),
        ("au.dbt.com", "https://au.dbt.com"),
        ("https://ab123.us1.dbt.com/api/v2/accounts/1/", "https://ab123.us1.dbt.com"),
        ("localhost:8443", "https://localhost:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("  cloud.acme-vpc.getdbt.com  ", "https://cloud.acme-vpc.getdbt.com"),
    ],
)
def test_access_url_forms(given: str | None, expected: str) -> None:
    assert normalize_access_url(given) == expected


@pytest.mark.parametrize("bad", ["ftp://dbt.com", "https://", "host:notaport", "https://user:pw@dbt.com"])
def test_bad_access_url_says_what_to_use(bad: str) -> None:
    with pytest.raises(DbtCloudConfigError, match=r"ab123\.us1\.dbt\.com|credentials|host:port"):
        normalize_access_url(bad)


def test_token_is_not_in_repr_and_must_be_set() -> None:
    settings = ClientSettings(account_id="42", token=f" {TOKEN} ")  # type: ignore[arg-type]
    assert settings.account_id == 42
    assert settings.token == TOKEN
    assert TOKEN not in repr(settings)
    with pytest.raises(DbtCloudConfigError, match="service token"):
        ClientSettings(account_id=1, token="  ")
    with pytest.raises(DbtCloudConfigError, match="account id must be a number"):
        ClientSettings(account_id="acme", token=TOKEN)  # type: ignore[arg-type]
    with pytest.raises(DbtCloudConfigError, match="CA bundle"):
        ClientSettings(account_id=1, token=TOKEN, verify="/nonexistent/ca.pem")


def test_web_run_url() -> None:
    settings = ClientSettings(account_id=7, token=TOKEN, access_url="ab123.us1.dbt.com")
    assert settings.web_run_url(7, 3, 99) == "https://ab123.us1.dbt.com/deploy/7/projects/3/runs/99/"


def test_transport_ca_bundle_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requests_ca, ssl_ca, own = (tmp_path / n for n in ("requests.pem", "ssl.pem", "own.pem"))
    for path in (requests_ca, ssl_ca, own):
        path.write_text("pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(requests_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ssl_ca))
    base = {"account_id": 1, "token": TOKEN, "access_url": "ab1.us1.dbt.com"}
    assert resolve_transport(ClientSettings(**base)).verify == str(requests_ca)
    assert resolve_transport(ClientSettings(**base, verify=str(own))).verify == str(own)
    assert resolve_transport(ClientSettings(**base, verify=False)).verify is False
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert resolve_transport(ClientSettings(**base)).verify == str(ssl_ca)


def test_transport_proxy_from_settings_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com")
    public = ClientSettings(account_id=1, token=TOKEN, access_url="ab1.us1.dbt.com")
    assert resolve_transport(public).proxy == "http://env-proxy:3128"
    bypassed = ClientSettings(account_id=1, token=TOKEN, access_url="dbt.internal.example.com")
    assert resolve_transport(bypassed).proxy is None
    own = ClientSettings(
        account_id=1, token=TOKEN, access_url="ab1.us1.dbt.com", proxies={"https": "http://own:1"}
    )
    assert resolve_transport(own).proxy == "http://own:1"


def test_retry_policy_backoff_and_retry_after() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_max=5.0, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=60.0) == 5.0  # bounded by backoff_max
    assert RetryPolicy(honour_retry_after=False, jitter=False).delay(1, retry_after=9) != 9
    jittered = RetryPolicy(backoff_base=2.0, jitter=True)
    assert all(1.0 <= jittered.delay(1) <= 2.0 for _ in range(50))
    assert policy.should_retry(3)
    assert not policy.should_retry(4)
    with pytest.raises(DbtCloudConfigError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_retryable_statuses_depend_on_idempotency() -> None:
    assert is_retryable_status(429, idempotent=False)
    assert is_retryable_status(503, idempotent=False)
    assert is_retryable_status(500, idempotent=True)
    assert not is_retryable_status(500, idempotent=False)
    assert not any(is_retryable_status(s, idempotent=True) for s in (400, 401, 403, 404))


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_trigger_options_to_api_carries_every_field() -> None:
    options = TriggerRunOptions(
        cause="Nightly",
        git_sha="abc123",
        git_branch="main",
        github_pull_request_id=12,
        schema_override="dbt_pr_12",
        dbt_version_override="1.9.0",
        threads_override=8,
        target_name_override="ci",
        generate_docs_override=False,
        timeout_seconds_override=600,
        steps_override=["dbt build -s state:modified+"],
        extra={"future_field": 1},
    )
    assert options.to_api() == {
        "cause": "Nightly",
        "git_sha": "abc123",
        "git_branch": "main",
        "github_pull_request_id": 12,
        "schema_override": "dbt_pr_12",
        "dbt_version_override": "1.9.0",
        "threads_override": 8,
        "target_name_override": "ci",
        "generate_docs_override": False,
        "timeout_seconds_override": 600,
        "steps_override": ["dbt build -s state:modified+"],
        "future_field": 1,
    }
    for kind in ("gitlab_merge_request_id", "azure_pull_request_id", "non_native_pull_request_id"):
        assert TriggerRunOptions(**{kind: 5}).to_api()[kind] == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cause": "x" * 256}, "at most 255"),
        ({"cause": ""}, "non-empty"),
        ({"threads_override": 0}, "at least 1"),
        ({"threads_override": "4"}, "integer"),
        ({"steps_override": "dbt run"}, "list of dbt commands"),
        ({"steps_override": ["run"]}, "starting with 'dbt '"),
        ({"github_pull_request_id": 1, "gitlab_merge_request_id": 2}, "at most one"),
        ({"extra": {"cause": "x"}}, "own option"),
        ({"git_branch": " "}, "non-empty string"),
    ],
)
def test_trigger_options_reject_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(DbtCloudConfigError, match=message):
        TriggerRunOptions(**kwargs)


def test_with_cause_truncates() -> None:
    assert len(TriggerRunOptions.with_cause("y" * 400).cause) == 255


def test_lenient_parsing_helpers() -> None:
    assert parse_datetime("2021-11-26 16:48:41.431645+00:00") == datetime(
        2021, 11, 26, 16, 48, 41, 431645, tzinfo=timezone.utc
    )
    assert parse_datetime("2022-01-04T14:05:51Z") == datetime(2022, 1, 4, 14, 5, 51, tzinfo=timezone.utc)
    # Python 3.10's fromisoformat reads neither of these; dbt Cloud's own answers have both forms.
    assert parse_datetime("2022-01-04T14:05:51.12Z") == datetime(
        2022, 1, 4, 14, 5, 51, 120000, tzinfo=timezone.utc
    )
    assert parse_datetime("2022-01-04 14:05:51") == datetime(2022, 1, 4, 14, 5, 51, tzinfo=timezone.utc)
    assert isinstance(parse_datetime("2022-01-04T14:05:51Z"), pendulum.DateTime)  # what Airflow users get
    assert parse_datetime(1641305151) == datetime(2022, 1, 4, 14, 5, 51, tzinfo=timezone.utc)
    assert parse_datetime("garbage") is None
    assert parse_datetime("16:00") is None  # a time of day is not a timestamp
    assert parse_datetime("P1D") is None
    assert parse_datetime(None) is None
    assert parse_duration_seconds("1 day, 01:02:03") == 86400 + 3723
    assert parse_duration_seconds(None) is None
    assert RunStatus.parse("3") is RunStatus.RUNNING
    assert RunStatus.parse("Failed") is RunStatus.ERROR
    assert {RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED} == RunStatus.TERMINAL
    run = Run.from_api({"id": 1, "status": 3, "job_definition_id": None, "started_at": None})
    assert run.in_progress
    assert not run.is_complete
    assert run.job_id is None


def test_proxy_password_is_kept_out_of_repr_and_redacted() -> None:
    from airflow_dbt_provider.cloud._core import redact

    settings = ClientSettings(account_id=1, token=TOKEN, proxies={"https": "http://me:pr0xy-pw@proxy:3128"})
    assert "pr0xy-pw" not in repr(settings)
    assert redact(f"failed via http://me:pr0xy-pw@proxy:3128 with {TOKEN}", settings) == (
        "failed via http://me:***@proxy:3128 with ***"
    )


def test_legacy_shared_host_is_accepted_with_a_one_line_hint(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="airflow_dbt_provider.cloud")
    resolve_transport(ClientSettings(account_id=1, token=TOKEN))
    (hint,) = [r.getMessage() for r in caplog.records if "legacy" in r.getMessage()]
    assert "Access URL" in hint
    assert "\n" not in hint
    caplog.clear()
    resolve_transport(ClientSettings(account_id=1, token=TOKEN, access_url="ab1.us1.dbt.com"))
    assert not [r for r in caplog.records if "legacy" in r.getMessage()]
