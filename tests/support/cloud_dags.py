"""Run small DAGs with ``dag.test()`` and read back what Airflow recorded: states, XComs, errors.

``dag.test()`` runs the real task runner in process (rendering, XComs, the task state store,
retries, callbacks) and runs triggers inline, against the suite's SQLite metadata DB (the
``airflow_db`` fixture). Task errors are captured through the DAG's ``on_failure_callback`` and
``on_retry_callback``, which receive the exception exactly as Airflow reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

#: (dag_id, task_id, map_index, try_number) -> error text, from the failure callbacks and listener.
_ERRORS: dict[tuple[str, str, int, int], str] = {}
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
TRIGGER_CLASSPATH = "airflow_dbt_provider.triggers.dbt_cloud.DbtCloudRunTrigger"


def _record(ti: Any, error: Any) -> None:
    map_index = ti.map_index if ti.map_index is not None else -1
    key = (ti.dag_id, ti.task_id, map_index, ti.try_number)
    if error is not None or key not in _ERRORS:
        _ERRORS[key] = str(error)


def _record_error(context: Any) -> None:
    _record(context["ti"], context.get("exception"))


class _FailureListener:
    """Airflow 3.1/3.2's ``dag.test()`` gives failure callbacks no ``exception``; listeners get it."""

    from airflow.listeners import hookimpl

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        if getattr(task_instance, "task_id", None) is not None:
            _record(task_instance, error)


def _listen_for_failures() -> None:
    """Listen where the task runner calls: 3.1 core's manager; 3.2+ the Task SDK's own manager."""
    from airflow.listeners.listener import get_listener_manager

    managers = [get_listener_manager()]
    try:
        from airflow.sdk.listener import get_listener_manager as task_sdk_listener_manager
    except ImportError:  # Airflow 3.1
        pass
    else:
        managers.append(task_sdk_listener_manager())
    for manager in managers:
        if not any(isinstance(listener, _FailureListener) for listener in manager.pm.get_plugins()):
            manager.add_listener(_FailureListener())


@contextmanager
def make_dag(dag_id: str, *, retries: int = 0) -> Iterator[DAG]:
    """A DAG whose failures are recorded and whose retries follow at once."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={
            "retries": retries,
            "retry_delay": timedelta(seconds=0),
            "on_failure_callback": _record_error,
            "on_retry_callback": _record_error,
        },
    ) as dag:
        yield dag


@dataclass
class DagResult:
    """What one ``dag.test()`` left in the metadata DB."""

    dag_id: str
    run_id: str
    started: datetime
    _tis: dict[tuple[str, int], Any] = field(default_factory=dict)

    def ti(self, task_id: str, map_index: int = -1) -> Any:
        return self._tis[(task_id, map_index)]

    def state(self, task_id: str, map_index: int = -1) -> str | None:
        state = self.ti(task_id, map_index).state
        return None if state is None else str(state.value if hasattr(state, "value") else state)

    def try_number(self, task_id: str, map_index: int = -1) -> int:
        return int(self.ti(task_id, map_index).try_number)

    def xcom(self, task_id: str, key: str, map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(
                    dag_id=self.dag_id, run_id=self.run_id, task_id=task_id, map_index=map_index, key=key
                )
                .one_or_none()
            )
            return None if row is None else XComModel.deserialize_value(row)

    def all_xcoms(self) -> list[Any]:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.query(XComModel).filter_by(dag_id=self.dag_id, run_id=self.run_id).all()
            return [(r.task_id, r.key, XComModel.deserialize_value(r)) for r in rows]

    def errors(self, task_id: str, map_index: int = -1) -> list[str]:
        """Error texts of the task's failed tries, in order."""
        tries = sorted((k[3], e) for k, e in _ERRORS.items() if k[:3] == (self.dag_id, task_id, map_index))
        return [e for _, e in tries]

    def all_errors(self) -> list[str]:
        return [e for (d, *_), e in sorted(_ERRORS.items()) if d == self.dag_id]

    def deferred_runs(self, task_id: str) -> list[int]:
        """Run ids of the dbt Cloud triggers this DAG run's tasks deferred to (trigger rows stay)."""
        from airflow.models.trigger import Trigger
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.query(Trigger).filter(Trigger.classpath == TRIGGER_CLASSPATH).all()
            return [
                int(r.kwargs["run_id"])
                for r in rows
                if r.created_date >= self.started and r.kwargs.get("dbt_cloud_conn_id") is not None
            ]


def _register(dag: DAG) -> None:
    """Serialize a DAG defined in a test module into the DB, as a DAG processor would.

    ``dag.test()`` only finds DAGs of a configured bundle (the dags folder); test DAGs are written
    under that bundle's name from an empty folder, so nothing else is parsed.
    """
    import tempfile

    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.1 keeps them in airflow.models.dagbag
        from airflow.models.dagbag import BundleDagBag, sync_bag_to_db  # type: ignore[no-redef]

    DagBundlesManager().sync_bundles_to_db()
    with tempfile.TemporaryDirectory() as empty:
        try:
            bag = BundleDagBag(dag_folder=empty, bundle_path=Path(empty), bundle_name="dags-folder")
        except TypeError:  # Airflow 3.1: the bag does not know its bundle's name
            bag = BundleDagBag(dag_folder=empty, bundle_path=Path(empty))
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)


def run_dag(dag: DAG, **kwargs: Any) -> DagResult:
    """``dag.test()`` the DAG; returns its recorded outcome (the DAG run may have failed)."""
    from airflow.sdk import timezone

    if not dag.fileloc.startswith(str(EXAMPLE_DAGS)):
        _register(dag)
    started = timezone.utcnow()
    _listen_for_failures()
    dag_run = dag.test(**kwargs)
    result = DagResult(dag_id=dag.dag_id, run_id=dag_run.run_id, started=started)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id):
            session.expunge(ti)
            result._tis[(ti.task_id, ti.map_index)] = ti
    return result


@contextmanager
def finish_runs_once_deferred(
    emulator: Any, *, speed: float = 5000.0, timeout: float = 240.0
) -> Iterator[None]:
    """Hold runs slow until a dbt Cloud trigger is created, then let them finish at once.

    Makes deferral tests deterministic on a loaded machine: the task's first status check always
    finds the run going (so it defers), and the trigger then sees it end quickly.
    """
    import threading
    import time

    from airflow.models.trigger import Trigger
    from airflow.sdk import timezone
    from airflow.utils.session import create_session

    since = timezone.utcnow()
    emulator.set_speed(0.5)
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            with create_session() as session:
                deferred = (
                    session.query(Trigger)
                    .filter(Trigger.classpath == TRIGGER_CLASSPATH, Trigger.created_date >= since)
                    .count()
                )
            if deferred:
                emulator.set_speed(speed)
                return
            done.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)
