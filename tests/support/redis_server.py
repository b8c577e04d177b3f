"""A real Redis server on loopback for tests: the Celery broker of the end-to-end Celery deployment.

Why not a fake broker: the CeleryExecutor's routing (one queue per worker), its remote control
(``add_consumer``/``cancel_consumer``, ``inspect``) and what a worker sees of a task all go through
the broker; only a real one shows them. ``scripts/ensure_system_deps.sh`` (run by ``make test``)
installs Debian's ``redis-server``. The server runs on a free port with its own directory, a random
password and no persistence (no RDB snapshots, no AOF): a throwaway broker, gone with its directory.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.postgres import free_port
from support.process_guard import record_started, signals_deferred, stop_group

REDIS_SERVER = "/usr/bin/redis-server"


def find_redis_server() -> str:
    """The ``redis-server`` binary (Debian's package puts it in /usr/bin)."""
    found = REDIS_SERVER if os.access(REDIS_SERVER, os.X_OK) else shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "redis-server not found; run `bash scripts/ensure_system_deps.sh` (make test does) to install it"
        )
    return found


@dataclass
class RedisServer:
    """One throwaway Redis on ``127.0.0.1``, password-protected, in a temporary directory."""

    host: str = "127.0.0.1"
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _root: Path | None = field(default=None, repr=False)

    def start(self, *, timeout: float = 30.0) -> RedisServer:
        binary = find_redis_server()
        self._root = Path(tempfile.mkdtemp(prefix="adp-redis-"))
        self.port = self.port or free_port()
        # The password goes in a config file (0600), not argv, which `ps` shows to every user.
        config = self._root / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    f"bind {self.host}",
                    f"port {self.port}",
                    f"dir {self._root}",
                    f"requirepass {self.password}",
                    'save ""',
                    "appendonly no",
                    "daemonize no",
                    "protected-mode yes",
                    "databases 4",
                    "",
                ]
            )
        )
        config.chmod(0o600)
        log = open(self._root / "redis.log", "wb")  # noqa: SIM115 - lives as long as the server
        with signals_deferred():  # a termination signal must not lose the handle on the server
            self._proc = subprocess.Popen(
                [binary, str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            record_started("redis", self._proc.pid)
        log.close()  # the child holds its own copy
        atexit.register(self.stop)  # safety net: an interrupted run must not leave the server behind
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited during start-up:\n{self.log_tail()}")
            try:
                if self.client().ping():
                    return
            except Exception as exc:  # not listening yet
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer within {timeout}s ({last}):\n{self.log_tail()}")

    def client(self, db: int = 0):  # type: ignore[no-untyped-def]
        """A redis-py client (redis-py comes with ``celery[redis]``)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, password=self.password, db=db, socket_timeout=5)

    def url(self, db: int = 0) -> str:
        """The broker URL (contains the password: never log it)."""
        return f"redis://:{self.password}@{self.host}:{self.port}/{db}"

    def log_tail(self, lines: int = 40) -> str:
        if self._root is None:
            return ""
        path = self._root / "redis.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None:
            # SIGTERM is Redis's clean shutdown; with persistence off it writes nothing.
            stop_group(self._proc, signal.SIGTERM, timeout=15)
        self._proc = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
