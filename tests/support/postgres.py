"""A real PostgreSQL server on loopback for tests, started from the machine's server binaries.

Why not a mock: profile mapping, query cancel on kill and the end-to-end Airflow deployment are
only honest against a real server. ``scripts/ensure_system_deps.sh`` (run by ``make test``)
installs the binaries when they are missing. As root, PostgreSQL refuses to run, so the server runs
as the ``postgres`` system user.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from support.process_guard import record_started, signals_deferred, stop_group


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` directory."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
            "run `bash scripts/ensure_system_deps.sh` (make test does) to install them"
        )
    return Path(candidates[-1]).parent


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One throwaway cluster: superuser ``postgres`` with a random password, scram auth over TCP."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = "postgres"
    password: str = field(default_factory=lambda: "pw-" + secrets.token_urlsafe(18), repr=False)
    datadir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _root: Path | None = field(default=None, repr=False)

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self, *, max_connections: int = 200, timeout: float = 60.0) -> PostgresServer:
        bindir = find_bindir()
        self._root = Path(tempfile.mkdtemp(prefix="adp-pg-"))
        self._root.chmod(0o755)
        self._chown(self._root)
        self.datadir = self._root / "data"
        sockdir = self._root / "sock"
        pwfile = self._root / "pw"
        pwfile.write_text(self.password)
        self._chown(pwfile)
        sockdir.mkdir()
        self._chown(sockdir)
        subprocess.run(
            self._as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        self.port = self.port or free_port()
        log = open(self._root / "postgres.log", "wb")  # noqa: SIM115 - lives as long as the server
        self._chown(self._root / "postgres.log")
        with signals_deferred():  # a termination signal must not lose the handle on the server
            self._proc = self._popen_server(bindir, sockdir, max_connections, log)
            record_started("postgres", self._proc.pid)
        atexit.register(self.stop)  # safety net: an interrupted run must not leave the server behind
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _popen_server(
        self, bindir: Path, sockdir: Path, max_connections: int, log: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._as_postgres(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(sockdir),
                    "-c",
                    f"listen_addresses={self.host}",
                    "-c",
                    f"max_connections={max_connections}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{self.log_tail()}")
            try:
                self.execute("select 1")
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not accept connections within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server log, for failure messages."""
        if self._root is None:
            return ""
        path = self._root / "postgres.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True):  # type: ignore[no-untyped-def]
        """A psycopg2 connection over TCP with password auth (psycopg2 comes with dbt-postgres)."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname
        )
        conn.autocommit = autocommit
        return conn

    def execute(self, sql: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        with contextlib.closing(self.connect(dbname)) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def create_database(self, name: str) -> str:
        """Create (or re-create) a database and return its name."""
        self.execute(f'drop database if exists "{name}" with (force)')
        self.execute(f'create database "{name}"')
        return name

    def airflow_connection(self, dbname: str) -> dict[str, object]:
        """An Airflow ``postgres`` connection to ``dbname`` (for ``AIRFLOW_CONN_*``; has the password)."""
        return {
            "conn_type": "postgres",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "schema": dbname,
        }

    def uri(self, dbname: str = "postgres", scheme: str = "postgresql") -> str:
        """A connection URI (contains the password: never log it)."""
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        if self._proc is not None:
            stop_group(self._proc, signal.SIGINT, timeout=30)  # SIGINT: PostgreSQL's "fast shutdown"
        self._proc = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
