"""``DbtCloudEmulator``: the whole emulator in a background thread, as a context manager.

The server runs on its own event loop in a daemon thread, so it serves while the test (or a DAG
run) blocks on synchronous HTTP calls. ``start()`` returns once the socket accepts connections;
``stop()`` closes every connection, stops the loop, joins the thread and removes the generated keys.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_dbt_provider.testing.dbt_cloud_emulator.app import App, RecordedRequest
from airflow_dbt_provider.testing.dbt_cloud_emulator.certs import generate_certificates, server_ssl_context
from airflow_dbt_provider.testing.dbt_cloud_emulator.clock import EmulatedClock, check_speed
from airflow_dbt_provider.testing.dbt_cloud_emulator.config import load_config
from airflow_dbt_provider.testing.dbt_cloud_emulator.faults import FaultBook
from airflow_dbt_provider.testing.dbt_cloud_emulator.httpserver import HttpServer
from airflow_dbt_provider.testing.dbt_cloud_emulator.render import Renderer
from airflow_dbt_provider.testing.dbt_cloud_emulator.state import State, World

START_TIMEOUT = 30.0


class DbtCloudEmulator:
    """An emulated dbt Cloud Administrative API on loopback (see ``docs/emulator.md``).

    >>> with DbtCloudEmulator(speed=10) as emu:  # doctest: +SKIP
    ...     requests.get(f"{emu.base_url}/api/v2/accounts/", verify=emu.ca_cert_path,
    ...                  headers={"Authorization": f"Token {emu.token}"})
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        https: bool = True,
        token: str = "emulator-token",
        config: Mapping[str, Any] | str | Path | None = None,
        speed: float = 1.0,
        lenient: bool = False,
        backlog: int = 4096,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError(
                "token must be a non-empty string (clients send it as 'Authorization: Token ...')"
            )
        self.host = host
        self.port = port
        self.https = https
        self.token = token
        self.lenient = lenient
        self._backlog = backlog
        self._clock = EmulatedClock(check_speed(speed))
        self._state = State(load_config(config), self._clock, token, time.time)
        self.world: World = self._state.world()
        self.account_id = self.world.account_id
        self.faults = FaultBook()
        #: ``inject_fault(kind=..., path="*", method="*", count=1, status=503, retry_after=None,
        #: delay=0.0)``: make the next ``count`` matching requests fail (:meth:`FaultBook.add`; the
        #: kinds are in :mod:`.faults`).
        self.inject_fault = self.faults.add
        self.base_url = ""
        self.ca_cert_path: Path | None = None
        self._tmpdir: Path | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: HttpServer | None = None
        self._app: App | None = None

    def __repr__(self) -> str:  # the token is a credential: never in a repr
        mode = "lenient" if self.lenient else "strict"
        url = self.base_url or "(not started)"
        return f"DbtCloudEmulator(base_url={url!r}, {mode}, speed={self._clock.speed})"

    # --------------------------------------------------------------------------------- lifecycle
    def start(self) -> DbtCloudEmulator:
        """Start serving; returns once connections are accepted. Raises if the port cannot be bound."""
        if self._thread is not None:
            raise RuntimeError("this emulator is already running; call stop() first")
        ssl_context = None
        self._tmpdir = Path(tempfile.mkdtemp(prefix="dbt-cloud-emulator-"))
        if self.https:
            files = generate_certificates(self._tmpdir)
            self.ca_cert_path = files.ca_cert
            ssl_context = server_ssl_context(files)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        async def boot() -> None:
            scheme = "https" if self.https else "http"
            url_host = "localhost" if self.host in ("localhost",) else self.host
            renderer = Renderer(self._state, "", self.lenient)
            self._app = App(self._state, renderer, self.faults, self.lenient)
            self._server = HttpServer(self._app, self.host, self.port, ssl_context, self._backlog)
            await self._server.start()
            self.base_url = f"{scheme}://{url_host}:{self._server.port}"
            renderer.base_url = self.base_url

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(boot())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="dbt-cloud-emulator", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT) or errors:
            self._thread.join(5)
            self._thread = None
            self._cleanup_files()
            if errors:
                raise RuntimeError(
                    f"dbt Cloud emulator failed to start on {self.host}:{self.port}: {errors[0]}"
                )
            raise RuntimeError("dbt Cloud emulator did not start within 30 s")
        return self

    def stop(self) -> None:
        """Close all connections, stop the server thread and delete the generated certificate/key."""
        if self._thread is None or self._loop is None:
            return
        if self._server is not None:
            future = asyncio.run_coroutine_threadsafe(self._server.close(), self._loop)
            future.result(timeout=30)
            # Let connection handlers finish their cleanup before the loop stops.
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._server = None
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> DbtCloudEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------- control
    def requests(self) -> list[RecordedRequest]:
        """API requests received so far, oldest first (control requests excluded)."""
        return list(self._require_app().log)

    def reset(self) -> None:
        """Back to the seeded world: no runs, no created jobs, empty request log, no faults."""
        if self._app is not None:
            self._app.reset()
        else:
            self.faults.clear()
            self._state.reset()

    def set_speed(self, speed: float) -> None:
        """Emulated seconds per real second from now on (runs in flight keep their progress)."""
        self._clock.set_speed(speed)

    @property
    def speed(self) -> float:
        return self._clock.speed

    def _require_app(self) -> App:
        if self._app is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return self._app
