"""Load client for the dbt Cloud emulator: N concurrent keep-alive connections polling one run.

Run as a separate process (``python tests/support/emulator_load_client.py URL TOKEN PATH N POLLS [CA]``)
so the numbers measure the server, not a client sharing its event loop or GIL. Every connection is
opened first and held open (N simultaneous connections), then each polls ``PATH`` ``POLLS`` times
over its own connection. Prints one JSON line: connections made, answers by status, failures.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import h11

OVERALL_TIMEOUT = 120.0


async def _response(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, body = 0, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return status, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionResetError("server closed the connection")


async def main(
    url: str, token: str, path: str, clients: int, polls: int, ca: str | None
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    context = ssl.create_default_context(cafile=ca) if parts.scheme == "https" else None
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    all_connected = asyncio.Event()
    connected = 0
    bad_bodies = 0
    marks: dict[str, float] = {}

    async def one() -> None:
        nonlocal connected, bad_bodies
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=1 << 20)
        except OSError as exc:
            failures[f"connect: {type(exc).__name__}"] += 1
            return
        connected += 1
        if connected == clients:
            marks["connected"] = time.perf_counter()
            all_connected.set()
        try:
            await asyncio.wait_for(all_connected.wait(), OVERALL_TIMEOUT)
            conn = h11.Connection(h11.CLIENT)
            headers = [
                ("host", f"{host}:{port}"),
                ("authorization", f"Token {token}"),
                ("accept", "application/json"),
            ]
            for _ in range(polls):
                writer.write(conn.send(h11.Request(method="GET", target=path, headers=headers)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                status, body = await _response(conn, reader)
                statuses[status] += 1
                if status == 200 and "status" not in json.loads(body).get("data", {}):
                    bad_bodies += 1
        except (OSError, asyncio.TimeoutError, h11.ProtocolError) as exc:
            failures[f"request: {type(exc).__name__}"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(clients))), OVERALL_TIMEOUT)
    return {
        "clients": clients,
        "connected": connected,
        "statuses": {str(k): v for k, v in statuses.items()},
        "failures": dict(failures),
        "bad_bodies": bad_bodies,
        "seconds": round(time.perf_counter() - started, 3),
        "connect_seconds": round(marks.get("connected", started) - started, 3),
    }


if __name__ == "__main__":
    url_, token_, path_, n_, polls_ = sys.argv[1:6]
    ca_ = sys.argv[6] if len(sys.argv) > 6 else None
    print(json.dumps(asyncio.run(main(url_, token_, path_, int(n_), int(polls_), ca_))))
