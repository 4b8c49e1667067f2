"""The stack's services as child processes, started the way an operator would.

Each service is ``python -m <name> serve --config <name>.toml`` with
``--ready-file``: the harness waits for that file (the service writes its
ports there once it listens) and reads the ports from it. Output goes to a
log file. A process that dies while starting fails the start with the tail
of its log; stopping is SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Generous for a slow CI machine: the simulator creates and seeds its store,
# the sidecar runs its first deep health check before it listens.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 40


class StackError(Exception):
    """A process of the stack could not be started."""


@dataclass
class Process:
    """One service as a child process, its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    ready_file: Path
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    child: subprocess.Popen[bytes] | None = None
    start_timeout_s: float = START_TIMEOUT_S

    def start(self) -> dict[str, int]:
        """Start and wait until it listens; its ``ports`` from the ready file."""
        command = [*self.argv, "--ready-file", str(self.ready_file)]
        with self.log.open("ab") as log:
            self.child = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ports = self._wait_until_ready()
        assert all(isinstance(p, int) for p in ports.values()), ports
        return ports

    def _wait_until_ready(self) -> dict[str, int]:
        assert self.child is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise StackError(self._failure(f"exited with {self.child.returncode}"))
            if self.ready_file.exists():
                document = json.loads(self.ready_file.read_text())
                return dict(document["ports"])
            time.sleep(0.05)
        raise StackError(self._failure(f"not ready within {self.start_timeout_s:g} s"))

    def _failure(self, what: str) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        tail = "\n".join(f"    {line}" for line in lines)
        return f"{self.name} {what} while starting; its log ({self.log}) ends:\n{tail}"

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not end in time."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def service_process(
    name: str, workdir: Path, env: Mapping[str, str] | None = None
) -> Process:
    """``python -m <name> serve`` on ``<name>.toml`` in ``workdir``, not started."""
    argv = [
        sys.executable,
        "-m",
        name,
        "serve",
        "--config",
        str(workdir / f"{name}.toml"),
    ]
    return Process(
        name=name,
        argv=argv,
        log=workdir / f"{name}.log",
        ready_file=workdir / f"{name}.ready.json",
        env=env or {},
    )
