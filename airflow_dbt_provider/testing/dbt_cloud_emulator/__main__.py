"""Command line: ``python -m airflow_dbt_provider.testing.dbt_cloud_emulator`` / ``dbt-cloud-emulator``.

Prints ``listening on <base URL>`` as its first line (flushed, so a parent process can read it),
then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from airflow_dbt_provider.testing.dbt_cloud_emulator.clock import SpeedError, check_speed
from airflow_dbt_provider.testing.dbt_cloud_emulator.config import ConfigError
from airflow_dbt_provider.testing.dbt_cloud_emulator.emulator import DbtCloudEmulator


def _speed(value: str) -> float:
    try:
        return check_speed(value)
    except SpeedError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbt-cloud-emulator",
        description="Serve an emulated dbt Cloud API on loopback for offline tests (see docs/emulator.md).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8443, help="port to bind; 0 picks a free one (default 8443)"
    )
    parser.add_argument("--http", action="store_true", help="serve plain HTTP instead of HTTPS")
    parser.add_argument(
        "--cert-out", type=Path, help="write the CA certificate (PEM) clients should trust here"
    )
    parser.add_argument(
        "--token", default="emulator-token", help="API token to accept (default emulator-token)"
    )
    parser.add_argument(
        "--config", type=Path, help="JSON world config; default: the documented default world"
    )
    parser.add_argument(
        "--speed", type=_speed, default=1.0, help="emulated seconds per real second (default 1)"
    )
    parser.add_argument(
        "--lenient", action="store_true", help="answer like the live service, not the strict spec"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.http and args.cert_out:
        print("--cert-out needs HTTPS; drop --http or --cert-out", file=sys.stderr)
        return 2
    try:
        emulator = DbtCloudEmulator(
            host=args.host, port=args.port, https=not args.http, token=args.token, config=args.config,
            speed=args.speed, lenient=args.lenient,
        )  # fmt: skip
        emulator.start()
    except (ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"dbt-cloud-emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if args.cert_out and emulator.ca_cert_path:
            args.cert_out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(emulator.ca_cert_path, args.cert_out)
        print(f"listening on {emulator.base_url}", flush=True)
        print(
            json.dumps({"world": emulator.world.as_dict(), "lenient": args.lenient, "speed": args.speed}),
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
