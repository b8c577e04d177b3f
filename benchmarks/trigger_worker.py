"""One triggerer-scale measurement, in a process of its own (run by ``benchmarks.trigger_scale``).

Starts ``n`` dbt Cloud job runs on the emulator (untimed), waits for the parent's go, then runs
``n`` trigger instances' ``run()`` generators concurrently in one asyncio loop, as Airflow's
triggerer does: each is iterated until its first event, then closed and cleaned up.
Measured over that phase only: process CPU time, wall time until the last event, peak RSS,
event-loop stall (a sampler task sleeps 10 ms and records how late it wakes) and full garbage
collections. Prints one JSON object as its last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
from typing import Any

CONN_ID = "dbt_cloud_bench"
SAMPLE_S = 0.01
TRIGGER_TIMEOUT_S = 600.0
READY = "runs started"


def _connection_env(info: dict[str, Any]) -> None:
    """Both triggers read the same Airflow connection (same shape: login = account, password = token,
    host = tenant with port), given as an ``AIRFLOW_CONN_`` variable; TLS trust comes from the
    standard variables (requests, httpx and aiohttp's default SSL context all honour them)."""
    host = info["base_url"].split("://", 1)[1]
    conn = {
        "conn_type": "dbt_cloud",
        "login": str(info["account_id"]),
        "password": info["token"],
        "host": host,
    }
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)
    if info.get("ca_cert_path"):
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            os.environ[name] = info["ca_cert_path"]


def _start_runs(info: dict[str, Any], job_id: int, n: int) -> list[int]:
    """Trigger ``n`` runs over one keep-alive connection (setup, not measured)."""
    import httpx

    url = f"{info['base_url']}/api/v2/accounts/{info['account_id']}/jobs/{job_id}/run/"
    headers = {"Authorization": f"Token {info['token']}"}
    run_ids = []
    with httpx.Client(verify=info.get("ca_cert_path") or True, timeout=60.0, headers=headers) as client:
        for i in range(n):
            response = client.post(url, json={"cause": f"benchmark run {i}"})
            response.raise_for_status()
            run_ids.append(int(response.json()["data"]["id"]))
    return run_ids


def _make_trigger(impl: str, run_id: int, account_id: int, poll_interval: float) -> Any:
    end_time = time.time() + TRIGGER_TIMEOUT_S
    if impl == "official":
        from airflow.providers.dbt.cloud.triggers.dbt import DbtCloudRunJobTrigger

        return DbtCloudRunJobTrigger(
            conn_id=CONN_ID,
            run_id=run_id,
            end_time=end_time,
            poll_interval=poll_interval,
            account_id=account_id,
        )
    from airflow_dbt_provider.triggers.dbt_cloud import DbtCloudRunTrigger

    return DbtCloudRunTrigger(
        run_id=run_id, dbt_cloud_conn_id=CONN_ID, account_id=account_id, poll_interval=poll_interval,
        end_time=end_time,
    )  # fmt: skip


async def _drive(trigger: Any) -> dict[str, Any]:
    """What the triggerer does with one trigger: first event, then close and clean up."""
    generator = trigger.run()
    try:
        event = await generator.__anext__()
    except StopAsyncIteration:
        return {"status": "no event", "at": time.perf_counter()}
    finally:
        await generator.aclose()
        cleanup = getattr(trigger, "cleanup", None)
        if cleanup is not None:
            await cleanup()
    payload = event.payload if isinstance(event.payload, dict) else {"status": str(event.payload)}
    return {"status": str(payload.get("status")), "message": str(payload.get("message", ""))[:300],
            "at": time.perf_counter()}  # fmt: skip


async def _stall_sampler(stop: asyncio.Event, lateness: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        planned = loop.time() + SAMPLE_S
        await asyncio.sleep(SAMPLE_S)
        lateness.append(max(0.0, loop.time() - planned))


async def _phase(triggers: list[Any]) -> tuple[list[dict[str, Any]], list[float]]:
    stop = asyncio.Event()
    lateness: list[float] = []
    sampler = asyncio.create_task(_stall_sampler(stop, lateness))
    results = await asyncio.gather(*(_drive(t) for t in triggers))
    stop.set()
    await sampler
    return list(results), lateness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=["ours", "official"], required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--job", default="success")
    args = parser.parse_args()
    info = json.loads(sys.stdin.readline())
    _connection_env(info)
    run_ids = _start_runs(info, info["job_ids"][args.job], args.n)
    triggers = [_make_trigger(args.impl, r, info["account_id"], args.poll_interval) for r in run_ids]
    # The runs were started with the emulator's clock (nearly) frozen; the parent now sets the real
    # speed so that every run starts its timeline together with the measured phase.
    print(READY, flush=True)
    sys.stdin.readline()
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The setup's garbage (n started runs and their answers) is not the phase's: collect it untimed,
    # or a full collection it made due lands in the phase and counts as the triggers' stall.
    gc.collect()
    full_collections = gc.get_stats()[2]["collections"]
    cpu0, wall0, unix0 = time.process_time(), time.perf_counter(), time.time()
    results, lateness = asyncio.run(_phase(triggers))
    cpu = time.process_time() - cpu0
    full_collections = gc.get_stats()[2]["collections"] - full_collections
    lateness.sort()
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    failures = [r["message"] for r in results if r["status"] != "success"]
    print(json.dumps({
        "impl": args.impl, "n": args.n, "poll_interval": args.poll_interval,
        "phase_started_unix": unix0,
        "cpu_s": cpu,
        "wall_s": max(r["at"] for r in results) - wall0 if results else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_phase_mb": rss_before_mb,
        "max_stall_ms": lateness[-1] * 1000 if lateness else 0.0,
        "p99_stall_ms": lateness[int(len(lateness) * 0.99)] * 1000 if lateness else 0.0,
        "full_gc_in_phase": full_collections,
        "statuses": statuses,
        "false_failures": len(failures),
        "failure_examples": sorted(set(failures))[:3],
        "run_ids": run_ids,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
