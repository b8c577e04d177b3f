"""``project_dir`` on object storage: fetched once per version into a content-addressed directory.

Against moto's S3 server on loopback (through Airflow's ``ObjectStoragePath``, the Amazon
provider's filesystem and an ``aws`` connection); the server's request record proves what was
downloaded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from support.s3_server import Bucket, self_contained_project

from airflow_dbt_provider.core.parse_cache import default_cache_dir
from airflow_dbt_provider.object_storage import ObjectStorageError, projects
from airflow_dbt_provider.object_storage.projects import COMPLETE, PROJECTS_DIR, fetch_project
from airflow_dbt_provider.operators.dbt import DbtLsOperator

LOG = logging.getLogger("tests.object_storage")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def s3_project(bucket: Bucket, tmp_path: Path) -> tuple[Path, str]:
    """The self-contained example project uploaded to ``s3://<bucket>/projects/jaffle_shop``."""
    local = self_contained_project(tmp_path / "src")
    bucket.upload(local, "projects/jaffle_shop")
    return local, bucket.url("projects/jaffle_shop")


def test_fetched_once_per_version_and_again_when_it_changes(
    s3_project: tuple[Path, str], bucket: Bucket, cache_root: Path
) -> None:
    local, url = s3_project
    files = len(_tree(local))
    with bucket.server.recording() as first:
        project = fetch_project(url, cache_root, LOG)
    assert project.parent.parent == cache_root / PROJECTS_DIR
    assert project.name == "jaffle_shop"
    assert _tree(project) == _tree(local)
    assert sum(r.is_download for r in first) == files

    mtimes = {p: p.stat().st_mtime_ns for p in project.rglob("*")}
    with bucket.server.recording() as unchanged:
        assert fetch_project(url, cache_root, LOG) == project
    assert [r for r in unchanged if r.is_download] == []  # one listing, no object downloaded
    assert {p: p.stat().st_mtime_ns for p in project.rglob("*")} == mtimes

    # One model edited: a new version, in a directory of its own; the old one is left for tasks
    # still running on it.
    bucket.server.client().put_object(
        Bucket=bucket.name, Key="projects/jaffle_shop/models/staging/stg_orders.sql", Body=b"select 1 as id\n"
    )
    with bucket.server.recording() as changed:
        changed_project = fetch_project(url, cache_root, LOG)
    assert changed_project != project
    assert (changed_project / "models/staging/stg_orders.sql").read_bytes() == b"select 1 as id\n"
    assert sum(r.is_download for r in changed) == files
    assert (project / COMPLETE).parent.exists()


def test_the_path_is_the_same_on_every_worker_with_the_same_cache_root(
    s3_project: tuple[Path, str], cache_root: Path, tmp_path: Path
) -> None:
    """Why dbt's partial-parse file (which keeps absolute paths) can serve every worker."""
    _, url = s3_project
    project = fetch_project(url, cache_root, LOG)
    elsewhere = fetch_project(url, tmp_path / "other-worker", LOG)
    assert elsewhere.relative_to(tmp_path / "other-worker") == project.relative_to(cache_root)


def test_concurrent_fetches_of_one_version_end_with_one_complete_tree(
    s3_project: tuple[Path, str], cache_root: Path
) -> None:
    local, url = s3_project
    start = threading.Barrier(4)
    results: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        start.wait()
        try:
            results.append(fetch_project(url, cache_root, LOG))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    assert _tree(results[0]) == _tree(local)
    assert [p.name for p in (cache_root / PROJECTS_DIR).iterdir()] == [results[0].parent.name]


def test_a_file_url_works_and_changes_are_seen(tmp_path: Path, cache_root: Path) -> None:
    local = self_contained_project(tmp_path / "shared-volume")
    url = local.as_uri()
    project = fetch_project(url, cache_root, LOG)
    assert _tree(project) == _tree(local)
    assert fetch_project(url, cache_root, LOG) == project
    (local / "models" / "new_model.sql").write_text("select 2 as id\n")
    assert (fetch_project(url, cache_root, LOG) / "models" / "new_model.sql").is_file()


@pytest.mark.usefixtures("cache_root")
def test_the_operator_runs_the_fetched_project(s3_project: tuple[Path, str], tmp_path: Path) -> None:
    _, url = s3_project
    operator = DbtLsOperator(
        task_id="ls",
        project_dir=url,
        resource_types=["model"],
        output_format="name",
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    )
    summary = operator.execute(context={"ti": None})  # type: ignore[arg-type]
    assert sorted(summary["resources"]) == [
        "customers",
        "orders",
        "stg_customers",
        "stg_orders",
        "stg_payments",
    ]
    assert (default_cache_dir() / PROJECTS_DIR).is_dir()


@pytest.mark.usefixtures("cache_root")
def test_clear_errors_in_the_users_terms(bucket: Bucket) -> None:
    def run(project_dir: str) -> str:
        operator = DbtLsOperator(task_id="ls", project_dir=project_dir)
        with pytest.raises(ObjectStorageError) as raised:
            operator.execute(context={"ti": None})  # type: ignore[arg-type]
        return str(raised.value)

    message = run(f"s3://no_such_conn@{bucket.name}/p")
    assert "project_dir='s3://no_such_conn@" in message
    assert "'no_such_conn'" in message
    assert "does not exist" in message
    assert "type aws" in message

    message = run("nosuchfs://bucket/project")
    assert "project_dir='nosuchfs://bucket/project'" in message
    assert "no installed Airflow provider registers the nosuchfs:// filesystem" in message

    message = run(bucket.url("nothing/here"))
    assert "holds no dbt_project.yml" in message
    assert "nothing is stored there" in message

    message = run(f"s3://{bucket.name}-missing/p".replace("s3://", "s3://adp_s3@"))
    assert "project_dir='s3://adp_s3@" in message
    assert "holds no dbt_project.yml" in message or "could not be listed" in message

    with pytest.raises(ValueError, match="profiles_dir must be a local directory"):
        DbtLsOperator(task_id="ls", project_dir=bucket.url("p"), profiles_dir=bucket.url("profiles"))


def test_no_secret_in_errors(bucket: Bucket, cache_root: Path) -> None:
    """A URL with a password in its user part (not Airflow's convention) never shows it."""
    with pytest.raises(ObjectStorageError) as raised:
        fetch_project(f"s3://adp_s3:hunter2-secret@{bucket.name}/p?token=signed-secret", cache_root, LOG)
    assert "hunter2-secret" not in str(raised.value)
    assert "signed-secret" not in str(raised.value)


def test_the_concurrent_download_brings_every_object_intact_with_one_get_each(
    bucket: Bucket, cache_root: Path, tmp_path: Path
) -> None:
    """Hundreds of objects fetched at once (empty, tiny, and larger than one read chunk), one GET
    per object after one listing: no HEAD, no second listing, no object fetched twice."""
    local = self_contained_project(tmp_path / "src")
    for i in range(300):
        (local / "models" / "many" / f"m_{i:03d}.sql").parent.mkdir(parents=True, exist_ok=True)
        (local / "models" / "many" / f"m_{i:03d}.sql").write_text(f"select {i} as id -- {'x' * (i * 7)}\n")
    (local / "seeds" / "empty.csv").write_bytes(b"")
    (local / "seeds" / "large.csv").write_bytes(bytes(range(256)) * 1200)  # 300 KiB: several chunks
    bucket.upload(local, "projects/many")
    with bucket.server.recording() as requests:
        project = fetch_project(bucket.url("projects/many"), cache_root, LOG)
    assert _tree(project) == _tree(local)
    downloads = [r.path for r in requests if r.is_download]
    assert len(downloads) == len(set(downloads)) == len(_tree(local))
    others = [r for r in requests if not r.is_download]  # one listing (a page per 1,000 objects)
    assert len(others) == 1
    assert others[0].method == "GET"
    assert "list-type" in others[0].query


def test_a_project_replaced_during_the_download_is_not_kept_under_the_old_version(
    s3_project: tuple[Path, str], bucket: Bucket, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is the listing's hash: bytes uploaded after the listing must not be kept under it."""
    _, url = s3_project
    real_download = projects._download
    key, body = "projects/jaffle_shop/models/staging/stg_orders.sql", b"select 2 as id -- re-uploaded\n"

    def download_after_a_reupload(*args: Any) -> None:
        bucket.server.client().put_object(Bucket=bucket.name, Key=key, Body=body)
        real_download(*args)

    monkeypatch.setattr(projects, "_download", download_after_a_reupload)
    with pytest.raises(ObjectStorageError, match="changed while it was downloaded") as raised:
        fetch_project(url, cache_root, LOG)
    assert "models/staging/stg_orders.sql" in str(raised.value)
    assert list((cache_root / PROJECTS_DIR).iterdir()) == []  # no version, no staging left

    monkeypatch.setattr(projects, "_download", real_download)
    project = fetch_project(url, cache_root, LOG)  # the next try lists the new content
    assert (project / "models/staging/stg_orders.sql").read_bytes() == body


def test_an_interrupted_download_never_leaves_a_usable_project(
    s3_project: tuple[Path, str], bucket: Bucket, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill's interrupt after the bytes arrived but before the publishing rename: nothing is
    published, the staging copy is gone, and the next task downloads the version afresh."""
    local, url = s3_project
    real_download = projects._download

    def download_then_interrupt(*args: Any) -> None:
        real_download(*args)
        raise KeyboardInterrupt  # what Airflow's kill raises in the task

    monkeypatch.setattr(projects, "_download", download_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch_project(url, cache_root, LOG)
    assert list((cache_root / PROJECTS_DIR).iterdir()) == []

    monkeypatch.setattr(projects, "_download", real_download)
    with bucket.server.recording() as requests:
        project = fetch_project(url, cache_root, LOG)
    assert sum(r.is_download for r in requests) == len(_tree(local))
    assert _tree(project) == _tree(local)
    assert (project.parent / COMPLETE).is_file()
