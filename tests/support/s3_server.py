"""A real S3-compatible server on loopback (moto's standalone server) for the object-storage tests.

Why a server and not patched clients: the provider reaches object storage through Airflow's
``ObjectStoragePath`` → the Amazon provider's filesystem → s3fs → aiobotocore, as a user's worker
does; only a server on a socket exercises all of it (signing, listing pages, ETags, errors).

The server runs in a child process of its own (``python s3_server.py``), so the tasks it serves —
in the test process or in further child processes — never share its GIL, and the benchmark can
use it too. A thin WSGI layer in front of moto records every request, so a test can prove what a
task downloaded (``requests()``), and answers ``GET /_requests`` with that record (bucket names
cannot start with ``_``, so it collides with no S3 call).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The access key pair moto accepts (any pair works; these are what the connection holds).
ACCESS_KEY, SECRET_KEY = "adp-test-access-key", "adp-test-secret-key-0123456789"
REGION = "us-east-1"
#: The Airflow connection id the tests' URLs name (``s3://adp_s3@bucket/...``).
CONN_ID = "adp_s3"
_RECORD_PATH = "/_requests"


@dataclass(frozen=True)
class S3Request:
    """One request the server answered: ``GET /bucket/key`` and its query string."""

    method: str
    path: str
    query: str

    @property
    def is_download(self) -> bool:
        """A GET of one object (a listing is a GET of the bucket with ``list-type``/``prefix``)."""
        parts = self.path.strip("/").split("/", 1)
        return self.method == "GET" and len(parts) == 2 and bool(parts[1]) and "list-type" not in self.query


@dataclass
class S3Server:
    """The child-process server; ``with S3Server() as s3:`` starts and stops it."""

    host: str = "127.0.0.1"
    port: int = 0
    _proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> S3Server:
        from support.process_guard import record_started, signals_deferred

        with signals_deferred():  # a termination signal must not lose the handle on the server
            self._proc = subprocess.Popen(
                [sys.executable, __file__, self.host],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            record_started("moto-s3", self._proc.pid)
        stdout = self._proc.stdout
        assert stdout is not None
        ready = threading.Event()
        line: list[str] = []

        def read_port() -> None:
            line.append(stdout.readline())
            ready.set()

        threading.Thread(target=read_port, daemon=True).start()
        if not ready.wait(timeout) or not line[0].startswith("PORT="):
            self.stop()
            raise RuntimeError(f"moto's S3 server did not start within {timeout:.0f}s: {line!r}")
        self.port = int(line[0].split("=", 1)[1])
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests use ------------------------------------------------------------------------

    def requests(self) -> list[S3Request]:
        """Every request answered so far, oldest first."""
        with urllib.request.urlopen(self.endpoint_url + _RECORD_PATH, timeout=30) as response:
            return [S3Request(*item) for item in json.load(response)]

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[S3Request]]:
        """The requests answered while the block ran (the list fills when the block ends)."""
        before = len(self.requests())
        seen: list[S3Request] = []
        try:
            yield seen
        finally:
            seen.extend(self.requests()[before:])

    def new_bucket(self) -> Bucket:
        """A bucket of its own for one test."""
        name = f"adp-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return Bucket(self, name)

    def client(self) -> Any:
        """A boto3 S3 client on this server (for a test's own setup and checks)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def connection(self) -> dict[str, Any]:
        """An Airflow connection of type ``aws`` reaching this server (``AIRFLOW_CONN_<ID>`` JSON)."""
        return {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }

    def upload_tree(self, local: Path, bucket: str, prefix: str) -> list[str]:
        """Upload every file under ``local`` to ``s3://bucket/prefix/...``; return the keys."""
        client = self.client()
        keys = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = f"{prefix.strip('/')}/{path.relative_to(local).as_posix()}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """``{key: bytes}`` of every object under ``prefix``."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found


@dataclass
class Bucket:
    """One test's bucket, and URLs into it through the connection :data:`CONN_ID`."""

    server: S3Server
    name: str

    def url(self, prefix: str) -> str:
        return f"s3://{CONN_ID}@{self.name}/{prefix.strip('/')}"

    def connection_env(self) -> tuple[str, str]:
        """``(name, value)`` of the environment variable that defines the connection."""
        return f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(self.server.connection())

    def upload(self, local: Path, prefix: str) -> list[str]:
        return self.server.upload_tree(local, self.name, prefix)

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        return self.server.objects(self.name, prefix)


def self_contained_project(destination: Path) -> Path:
    """The example project with its ``local:`` package installed in ``dbt_packages`` — what a
    deployment uploads after ``dbt deps`` (a ``../`` package would not be on object storage)."""
    from support.dbt_projects import EXAMPLES, copy_project

    project = copy_project(destination)
    shutil.copytree(EXAMPLES / "jaffle_utils", project / "dbt_packages" / "jaffle_utils")
    return project


def _recording_app(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap moto's WSGI app: record each request; answer ``GET /_requests`` with the record."""
    record: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == _RECORD_PATH:
            with lock:
                body = json.dumps(record).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        with lock:
            record.append((environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", "")))
        return app(environ, start_response)

    return wrapped


def _serve(host: str) -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = _recording_app(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, 0, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    sys.stdout.write(f"PORT={server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1")


def s3_server_fixture() -> Iterator[S3Server]:
    """The body of the session fixture ``s3_server`` (tests/object_storage/conftest.py)."""
    with S3Server() as server:
        yield server
