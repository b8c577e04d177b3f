"""The command line: ``listening on <URL>`` first, HTTPS with --cert-out, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

MODULE = "airflow_dbt_provider.testing.dbt_cloud_emulator"


@contextmanager
def serve(*args: str, command: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the emulator process; yield it and its base URL; always stop it."""
    cmd = command or [sys.executable, "-m", MODULE]
    proc = subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on "), (
            first,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        yield proc, first.removeprefix("listening on ")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_https_with_cert_out_token_and_sigterm(tmp_path: Path) -> None:
    ca = tmp_path / "certs" / "ca.pem"
    with serve("--port", "0", "--cert-out", str(ca), "--token", "cli-token", "--speed", "50") as (proc, url):
        assert url.startswith("https://127.0.0.1:")
        assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
        headers = {"Authorization": "Bearer cli-token"}
        accounts = httpx.get(f"{url}/api/v2/accounts/", headers=headers, verify=str(ca))
        assert accounts.status_code == 200
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA refuses it
            httpx.get(f"{url}/api/v2/accounts/", headers=headers)
        # "localhost" is in the certificate too.
        local = url.replace("127.0.0.1", "localhost")
        assert httpx.get(f"{local}/api/v2/accounts/", headers=headers, verify=str(ca)).status_code == 200
        assert proc.stdout is not None
        world = json.loads(proc.stdout.readline())["world"]
        assert set(world["job_ids"]) == {"success", "fail", "long"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_plain_http_and_sigint(tmp_path: Path) -> None:
    with serve("--port", "0", "--http", "--lenient") as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{url}/api/v2/accounts/", headers={"Authorization": "Token emulator-token"})
        assert r.json()["extra"]["order_by"] is None  # lenient
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_console_script() -> None:
    script = shutil.which("dbt-cloud-emulator", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the dbt-cloud-emulator console script is not installed in this environment")
    with serve("--port", "0", "--http", command=[script]) as (_, url):
        assert url.startswith("http://")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "0"], "speed must be a number > 0"),
        (["--config", "/nonexistent/world.json"], "does not exist"),
        (["--http", "--cert-out", "x.pem"], "--cert-out needs HTTPS"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
