"""The dbt Cloud emulator in a process of its own, so its CPU is never counted as the client's.

The child (``python -m benchmarks.emulator``) starts :class:`DbtCloudEmulator` and answers one JSON
command per line on stdin (``requests``, ``fault``, ``reset``, ``speed``) with one JSON line on
stdout, using only the emulator's documented Python API. Closing stdin stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.child import read_line, stop

START_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class EmulatorInfo:
    base_url: str
    ca_cert_path: str | None
    token: str
    account_id: int
    job_ids: dict[str, int]

    def __repr__(self) -> str:  # the token is a (fake) credential: keep the habit
        return f"EmulatorInfo(base_url={self.base_url!r}, account_id={self.account_id})"


class EmulatorProcess:
    """Parent side: start the child, read its address, send it commands, stop it."""

    def __init__(self, python: Path, *, speed: float, cwd: Path, env: dict[str, str] | None = None) -> None:
        self._command = [str(python), "-m", "benchmarks.emulator", "--speed", str(speed)]
        self._cwd = cwd
        self._env = env
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.info: EmulatorInfo | None = None

    def __enter__(self) -> EmulatorProcess:
        self._proc = subprocess.Popen(
            self._command, cwd=self._cwd, env=self._env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        first = self._read_line(START_TIMEOUT_S)
        self.info = EmulatorInfo(**json.loads(first))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            stop(self._proc)

    def command(self, op: str, **args: Any) -> Any:
        """Send one command and return its answer (raises with the child's message on failure)."""
        assert self._proc is not None, "emulator not started"
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self._proc.stdin.flush()
            answer = json.loads(self._read_line(COMMAND_TIMEOUT_S))
        if "error" in answer:
            raise RuntimeError(f"emulator command {op} failed: {answer['error']}")
        return answer["result"]

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.command("requests")
        return result

    def _read_line(self, timeout_s: float) -> str:
        """One stdout line, or an error if the child says nothing for ``timeout_s`` or exits."""
        assert self._proc is not None
        line = read_line(self._proc, timeout_s)
        if line is None:
            self._proc.kill()
            raise RuntimeError(
                f"the emulator process gave no answer within {timeout_s:.0f}s "
                f"(exit code {self._proc.poll()}); run `{' '.join(self._command)}` to see why"
            )
        return line


def _serve(speed: float) -> None:
    """Child side."""
    from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

    # Lenient: answer like the live service, which accepts what the official provider sends.
    with DbtCloudEmulator(speed=speed, lenient=True) as emulator:
        info = EmulatorInfo(
            base_url=emulator.base_url,
            ca_cert_path=str(emulator.ca_cert_path) if emulator.ca_cert_path else None,
            token=emulator.token,
            account_id=emulator.account_id,
            job_ids=dict(emulator.world.job_ids),
        )
        _say(asdict(info))
        for line in sys.stdin:
            try:
                _say({"result": _handle(emulator, json.loads(line))})
            except Exception as exc:
                _say({"error": f"{type(exc).__name__}: {exc}"})


def _handle(emulator: Any, message: dict[str, Any]) -> Any:
    op = message.pop("op")
    if op == "requests":
        return [asdict(r) if hasattr(r, "__dataclass_fields__") else dict(r) for r in emulator.requests()]
    if op == "fault":
        emulator.inject_fault(**message)
        return None
    if op == "reset":
        emulator.reset()
        return None
    if op == "speed":
        emulator.set_speed(float(message["speed"]))
        return None
    raise ValueError(f"unknown emulator command {op!r}; expected requests, fault, reset or speed")


def _say(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speed", type=float, default=1.0)
    _serve(parser.parse_args().speed)
