"""A distributed Airflow 3 deployment on loopback: CeleryExecutor, a Redis broker, two workers.

Why: teams that outgrow one machine run the CeleryExecutor, where a task's tries may land on any
worker and no two workers share a disk. :class:`CeleryDeployment` is the e2e harness's
:class:`~support.airflow_deployment.AirflowDeployment` (api-server, scheduler, dag-processor,
triggerer) with the CeleryExecutor, a real Redis as broker (:mod:`support.redis_server`),
PostgreSQL as metadata DB *and* Celery result backend, and two ``airflow celery worker``
processes, each as a machine of its own would be:

* its own ``AIRFLOW_HOME`` (so the provider's default cache root — parse cache, package mirror,
  rendered task-group manifests — and any ``$AIRFLOW_HOME``-relative artifacts dir are its own),
  ``HOME``, ``TMPDIR`` and ``XDG_CACHE_HOME``;
* its own hostname on its task instances (``worker_a``/``worker_b``, through ``[core]
  hostname_callable``), so a test reads from the REST API which worker ran each try;
* ``worker_concurrency`` 2, listening on ``default`` and on a queue of its own (``worker_a`` /
  ``worker_b``), so an operator's ``queue=`` routes a task to one worker deterministically.

What the workers share is what separate machines share too: the DAG files (the bundle each machine
has), the metadata DB, the broker, and the task logs folder — the stand-in for remote logging or a
shared log volume, without which the api-server could not show a finished task's log (both
workers' log servers would need the same port on this one host, so they run with
``--skip-serve-logs``).

The test process talks to the workers the way an operator does, through Celery's remote control
over the broker: :meth:`CeleryDeployment.active_queues`, :meth:`add_consumer` and
:meth:`cancel_consumer` (draining a worker), :meth:`busy_workers`. Every process is a
:class:`~support.airflow_deployment.Component`, so teardown stops it and everything it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.airflow_deployment import AirflowDeployment, DeploymentError

#: The directory holding the workers' ``hostname_callable`` module (``adp_worker_identity``).
SITE_DIR = Path(__file__).resolve().parent / "celery_site"
#: The queue every worker listens on; Airflow's ``[operators] default_queue``.
DEFAULT_QUEUE = "default"
#: The Celery node name's host part (``worker_a@adp-e2e``): the same for both, they share a host.
CELERY_NODE_HOST = "adp-e2e"


@dataclass(frozen=True)
class CeleryWorker:
    """One ``airflow celery worker``: its name (also its own queue and its hostname) and its directories."""

    name: str
    root: Path
    concurrency: int = 2

    @property
    def node(self) -> str:
        """The Celery node name remote-control commands address it by."""
        return f"{self.name}@{CELERY_NODE_HOST}"

    @property
    def queues(self) -> tuple[str, ...]:
        return (DEFAULT_QUEUE, self.name)

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    def environment(self, shared_logs: Path) -> dict[str, str]:
        """What makes it a machine of its own (laid over the deployment's environment)."""
        python_path = os.pathsep.join(p for p in (str(SITE_DIR), os.environ.get("PYTHONPATH", "")) if p)
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "XDG_CACHE_HOME": str(self.root / "home" / ".cache"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(shared_logs),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "adp_worker_identity.hostname",
            "ADP_WORKER_NAME": self.name,
            "PYTHONPATH": python_path,
        }

    def argv(self) -> list[str]:
        """``airflow celery <argv>``."""
        return [
            "worker",
            "--celery-hostname",
            self.node,
            "--queues",
            ",".join(self.queues),
            "--concurrency",
            str(self.concurrency),
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        ]

    def prepare(self) -> None:
        for sub in ("airflow", "home", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)


class CeleryDeployment(AirflowDeployment):
    """:class:`AirflowDeployment` on the CeleryExecutor with two workers (see the module docstring).

    ``broker_url`` is the Redis URL, ``result_backend`` a SQLAlchemy URL for Celery's database
    backend (``db+postgresql://...``); both carry passwords, so neither is ever logged.
    """

    def __init__(
        self,
        *,
        broker_url: str,
        result_backend: str,
        workers: Sequence[str] = ("worker_a", "worker_b"),
        worker_concurrency: int = 2,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        celery_env = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        }
        super().__init__(env={**celery_env, **(env or {})}, **kwargs)
        self._broker_url = broker_url
        self.workers: dict[str, CeleryWorker] = {
            name: CeleryWorker(name, self.home / "machines" / name, worker_concurrency) for name in workers
        }
        self._control_app: Any = None

    def __repr__(self) -> str:
        return f"CeleryDeployment({self.name!r}, base_url={self.base_url!r}, workers={sorted(self.workers)})"

    # -- lifecycle --------------------------------------------------------------------------

    def start_extra_components(self) -> None:
        for worker in self.workers.values():
            worker.prepare()
            self.start_component(
                "celery", alias=worker.name, args=worker.argv(), env=worker.environment(self.logs_folder)
            )

    def start(self, *, timeout: float = 240.0) -> CeleryDeployment:
        super().start(timeout=timeout)
        try:
            self.wait_workers_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._control_app is not None:
            with contextlib.suppress(Exception):
                self._control_app.close()
            self._control_app = None
        super().stop()

    def worker(self, name: str) -> CeleryWorker:
        try:
            return self.workers[name]
        except KeyError:
            raise KeyError(f"no worker {name!r}; started: {sorted(self.workers)}") from None

    # -- remote control (Celery's, over the broker) -------------------------------------------

    def control(self) -> Any:
        """A Celery app on the deployment's broker, for remote-control commands only."""
        if self._control_app is None:
            from celery import Celery

            self._control_app = Celery("adp-e2e-control", broker=self._broker_url, set_as_current=False)
        return self._control_app.control

    def _nodes(self, names: Iterable[str] | None) -> list[str]:
        return [self.worker(n).node for n in (names if names is not None else self.workers)]

    def ping(self, names: Iterable[str] | None = None) -> set[str]:
        """The workers (by name) that answered a ping within a second."""
        replies = self.control().ping(destination=self._nodes(names), timeout=1.0) or []
        nodes = {node for reply in replies for node in reply}
        return {w.name for w in self.workers.values() if w.node in nodes}

    def wait_workers_ready(self, *, timeout: float = 240.0) -> None:
        """Wait until every worker answers a ping; fail fast with its log when one exits."""
        deadline = time.monotonic() + timeout
        ready: set[str] = set()
        while time.monotonic() < deadline:
            self._check_alive(self.workers)
            ready = self.ping()
            if ready == set(self.workers):
                return
            time.sleep(0.5)
        missing = sorted(set(self.workers) - ready)
        raise DeploymentError(
            f"{self.name}: workers {missing} not ready within {timeout:.0f}s\n{self.log_tails()}"
        )

    def active_queues(self) -> dict[str, set[str]]:
        """The queues each worker consumes from right now, by worker name."""
        replies = self.control().inspect(destination=self._nodes(None), timeout=2.0).active_queues() or {}
        by_node = {node: {q["name"] for q in queues} for node, queues in replies.items()}
        return {w.name: by_node[w.node] for w in self.workers.values() if w.node in by_node}

    def add_consumer(self, worker: str, queue: str) -> None:
        """Have ``worker`` also consume ``queue`` (``celery control add_consumer``)."""
        self.control().add_consumer(queue, destination=[self.worker(worker).node], reply=True, timeout=5.0)
        self._wait_queues(worker, lambda queues: queue in queues, f"{worker} to consume {queue}")

    def cancel_consumer(self, worker: str, queue: str) -> None:
        """Stop ``worker`` consuming ``queue`` (draining it of that queue's new tasks)."""
        self.control().cancel_consumer(queue, destination=[self.worker(worker).node], reply=True, timeout=5.0)
        self._wait_queues(worker, lambda queues: queue not in queues, f"{worker} to stop consuming {queue}")

    def _wait_queues(self, worker: str, done: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            seen = self.active_queues()
            if worker in seen and done(seen[worker]):
                return
            time.sleep(0.2)
        raise DeploymentError(f"waited {timeout:.0f}s for {what}; queues seen: {seen}")

    def busy_workers(self) -> list[str]:
        """``worker: task`` for every Celery task a worker is running or holds (prefetched)."""
        inspect = self.control().inspect(destination=self._nodes(None), timeout=2.0)
        busy = []
        for replies in (inspect.active() or {}, inspect.reserved() or {}):
            for node, tasks in replies.items():
                busy += [f"{node}: {t.get('name')} {t.get('id')}" for t in tasks]
        return busy

    # -- processes ----------------------------------------------------------------------------

    def kill_task_process(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Signal a running task's process; refuses pids that are not below one of our workers."""
        ours = {p.pid for name in self.workers for p in self.component(name).descendants()}
        if pid not in ours:
            raise DeploymentError(
                f"pid {pid} is not a process of {self.name}'s Celery workers; not signalling it"
            )
        os.kill(pid, sig)
