"""The HTTP layer itself: bad requests, oversized bodies, keep-alive, and a clean stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.testing.dbt_cloud_emulator.httpserver import MAX_BODY


@pytest.fixture
def plain() -> Iterator[DbtCloudEmulator]:
    with DbtCloudEmulator(https=False) as emu:
        yield emu


def raw_exchange(emu: DbtCloudEmulator, payload: bytes) -> bytes:
    port = int(emu.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_garbage_gets_400(plain: DbtCloudEmulator) -> None:
    answer = raw_exchange(plain, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_oversized_body_gets_413(plain: DbtCloudEmulator) -> None:
    head = f"POST /api/v2/accounts/ HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    assert raw_exchange(plain, head.encode()).startswith(b"HTTP/1.1 413")


def test_keep_alive_serves_many_requests_on_one_connection(plain: DbtCloudEmulator) -> None:
    headers = {"Authorization": f"Token {plain.token}"}
    with httpx.Client(base_url=plain.base_url, headers=headers, limits=httpx.Limits(max_connections=1)) as c:
        assert all(c.get("/api/v2/accounts/").status_code == 200 for _ in range(20))


def test_stop_closes_the_port_and_the_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    emu = DbtCloudEmulator(https=True).start()
    port = int(emu.base_url.rsplit(":", 1)[1])
    ca = emu.ca_cert_path
    assert ca is not None
    assert ca.exists()
    idle = httpx.Client(base_url=emu.base_url, verify=str(ca))  # an open keep-alive connection
    idle.get("/_emulator/world")
    emu.stop()
    idle.close()
    assert {t.ident for t in threading.enumerate()} <= before
    assert not ca.exists()  # the generated key and certificates are deleted
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    emu.stop()  # idempotent


def test_start_twice_is_an_error() -> None:
    with DbtCloudEmulator(https=False) as emu, pytest.raises(RuntimeError, match="already running"):
        emu.start()


def test_port_in_use_is_a_clear_error(plain: DbtCloudEmulator) -> None:
    port = int(plain.base_url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="failed to start"):
        DbtCloudEmulator(https=False, port=port).start()
