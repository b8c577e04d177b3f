"""Task SDK reads from inside a trigger, on the triggerer's event loop: XComs and task states.

Why not ``XCom.get_one`` / ``RuntimeTaskInstance.get_task_states`` in a worker thread: those call
the supervisor channel's synchronous ``send``, which on Airflow 3.1 runs the request on a new event
loop in that thread, outside the channel's lock; concurrent with the trigger runner's own state
sync, the answers come back out of order and the triggerer's runner dies ("Response read out of
order"). Sending the same request messages with ``await comms.asend(...)`` on the triggerer's own
loop takes the lock on every Airflow version (3.2 made ``send`` thread-safe; 3.1 did not).
"""

from __future__ import annotations

import asyncio
from typing import Any


async def supervisor_request(request: Any) -> Any:
    """Send one Task SDK request to the triggerer's supervisor and return its answer."""
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise RuntimeError("not running under an Airflow supervisor (no SUPERVISOR_COMMS)")
    if hasattr(comms, "asend"):  # the triggerer's channel
        return await comms.asend(request)
    return await asyncio.to_thread(comms.send, request)  # a task process's (dag.test() runs triggers inline)


async def fetch_xcom(key: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
    """One XCom value, deserialized by the configured XCom backend (``None`` when unset).

    The backend's ``deserialize_value`` may read storage (object-storage backends), so it runs in a
    worker thread; it does not use the supervisor channel.
    """
    from airflow.sdk.execution_time.comms import GetXCom
    from airflow.sdk.execution_time.xcom import XCom

    request = GetXCom(
        key=key, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=None if map_index < 0 else map_index
    )
    response = await supervisor_request(request)
    if type(response).__name__ == "ErrorResponse":
        raise RuntimeError(f"GetXCom failed: {getattr(response, 'detail', response)}")
    if getattr(response, "value", None) is None:
        return None
    return await asyncio.to_thread(XCom.deserialize_value, response)


async def fetch_task_states(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """``{run_id: {task_key: state}}`` through the Task SDK's supervisor channel (no DB access)."""
    from airflow.sdk.execution_time.comms import GetTaskStates

    request = GetTaskStates(
        dag_id=dag_id, task_ids=[task_id], run_ids=[run_id], map_index=None if map_index < 0 else map_index
    )
    response = await supervisor_request(request)
    task_states = getattr(response, "task_states", None)
    if not isinstance(task_states, dict):
        raise RuntimeError(f"unexpected answer to GetTaskStates: {type(response).__name__}")
    return task_states
