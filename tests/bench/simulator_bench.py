"""Measure the simulator's CPU time per host-protocol command, under load.

    .venv/bin/python -m tests.bench.simulator_bench
    .venv/bin/python -m tests.bench.simulator_bench --root /tmp/sim_orig --root .

Starts the real simulator (``python -m simulator serve``, as the end-to-end
suite does: a minted PKI, mutual TLS, its log to a file, one line per
command) and drives it from this process over ``--connections`` TLS
connections, one thread each, each sending ``--depth`` pipelined commands in
one write and reading their replies, paced so that all together send
``--rate`` commands a second (0: as fast as replies come). The mix is the
XKS load's: GCEN and GCDE of 32 bytes with a 110-byte AAD, and one in ten
of them with 4,300 bytes (the XKS plaintext maximum).

Printed per run: the simulator's CPU (user + kernel, ``/proc/<pid>/stat``,
tests/bench/proc_cpu.py) per command over the window after a warm-up, and
the commands a second achieved. Each ``--root`` is a folder whose
``simulator`` package is run (a copy of the original code, say); the roots
are alternated ``--rounds`` times, since the machine is shared and its load
moves. Not a pytest test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fixtures.pki import Pki, mint
from simulator.hostproto.codec import (
    NEED_DATA,
    ErrorCode,
    Frame,
    FrameDecoder,
    b64,
    encode_frame,
    result_code,
)
from tests.bench.proc_cpu import own_cpu
from tests.e2e.config_files import private_file, simulator_config

_ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 30.0
_AAD = os.urandom(110)
_SMALL, _LARGE = 32, 4300
# Of every ten commands: five small GCEN, four small GCDE, one large (GCEN
# and GCDE by turns): about the XKS mix of Encrypt and Decrypt, counted in
# host commands.
_PATTERN = ["gcen", "gcde", "gcen", "gcde", "gcen", "gcde", "gcen", "gcde", "gcen"]


Request = tuple[str, tuple[tuple[str, str], ...]]  # command and fields, no ID


@dataclass
class Load:
    connections: int
    depth: int
    rate: float
    seconds: float
    warmup_s: float


@dataclass
class RunResult:
    root: Path
    cpu_us_per_command: float
    user_us_per_command: float
    commands_per_s: float
    errors: int


class _Client:
    """One TLS connection, used by one thread."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = context.wrap_socket(raw, server_hostname="localhost")
        self.decoder = FrameDecoder(1 << 20)
        self.next_id = 0

    def exchange(self, requests: list[Request]) -> int:
        """Send ``requests`` in one write, read their replies; the error count."""
        wire = []
        for command, fields in requests:
            self.next_id += 1
            frame = Frame(command, (("ID", format(self.next_id, "x")), *fields))
            wire.append(encode_frame(frame))
        self.tls.sendall(b"".join(wire))
        errors, pending = 0, len(requests)
        while pending:
            event = self.decoder.next_event()
            if event is NEED_DATA:
                data = self.tls.recv(65536)
                if not data:
                    raise EOFError("the simulator closed the connection")
                self.decoder.receive_data(data)
                continue
            assert isinstance(event, Frame), event
            errors += result_code(event) is not ErrorCode.OK
            pending -= 1
        return errors

    def close(self) -> None:
        self.tls.close()


def _requests(
    client: _Client,
) -> dict[str, list[Request]]:
    """The GCEN and GCDE requests of each size, GCDE on a real ciphertext."""
    made: dict[str, list[Request]] = {}
    for size in (_SMALL, _LARGE):
        plaintext = os.urandom(size)
        gcen = ("GCEN", (("KL", "foo"), ("PT", b64(plaintext)), ("AD", b64(_AAD))))
        reply = _one(client, gcen)
        gcde = (
            "GCDE",
            (
                ("KL", "foo"),
                *((tag, reply.text(tag)) for tag in ("KV", "IV", "CT", "TG")),
                ("AD", b64(_AAD)),
            ),
        )
        assert _one(client, gcde).binary("PT") == plaintext
        made[f"gcen{size}"], made[f"gcde{size}"] = [gcen], [gcde]
    return made


def _one(client: _Client, request: Request) -> Frame:
    client.tls.sendall(encode_frame(Frame(request[0], request[1])))
    while (event := client.decoder.next_event()) is NEED_DATA:
        client.decoder.receive_data(client.tls.recv(65536))
    assert isinstance(event, Frame)
    assert result_code(event) is ErrorCode.OK, event
    return event


def _mix(made: dict[str, list[Request]]) -> list[Request]:
    mix: list[Request] = []
    for turn in range(2):
        mix += [made[f"{name}{_SMALL}"][0] for name in _PATTERN]
        mix.append(made[f"{('gcen', 'gcde')[turn]}{_LARGE}"][0])
    return mix


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commands = 0
        self.errors = 0

    def add(self, commands: int, errors: int) -> None:
        with self.lock:
            self.commands += commands
            self.errors += errors


def _drive(client: _Client, load: Load, stop: float, counter: _Counter) -> None:
    made = _requests(client)
    mix = _mix(made)
    interval = load.depth * load.connections / load.rate if load.rate else 0.0
    turn, next_send = 0, time.monotonic()
    while (now := time.monotonic()) < stop:
        if interval and now < next_send:
            time.sleep(next_send - now)
        next_send += interval
        batch = [mix[(turn + i) % len(mix)] for i in range(load.depth)]
        turn += load.depth
        counter.add(load.depth, client.exchange(batch))


def _client_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.sim_ca_cert)
    context.load_cert_chain(pki.sidecar_hsm_client_cert, pki.sidecar_hsm_client_key)
    return context


@contextmanager
def _simulator(root: Path, workdir: Path, pki: Pki) -> Iterator[tuple[int, int]]:
    """The simulator of ``root``, started; yields (pid, host port)."""
    master_key = private_file(workdir / "master.key", secrets.token_bytes(32).hex())
    config = workdir / "simulator.toml"
    config.write_text(simulator_config(pki, workdir, master_key))
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    (workdir / "keys.db").unlink(missing_ok=True)
    command = [sys.executable, "-m", "simulator", "serve", "--config", str(config)]
    with (workdir / "simulator.log").open("ab") as log:
        child = subprocess.Popen(
            [*command, "--ready-file", str(ready)],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield child.pid, _wait_ready(child, ready)
    finally:
        child.terminate()
        child.wait(timeout=10)


def _wait_ready(child: subprocess.Popen[bytes], ready: Path) -> int:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the simulator exited with {child.returncode}")
        if ready.exists():
            return int(json.loads(ready.read_text())["ports"]["host"])
        time.sleep(0.05)
    raise RuntimeError("the simulator did not start")


def run_once(root: Path, workdir: Path, pki: Pki, load: Load) -> RunResult:
    """One simulator run of ``root`` under ``load``."""
    with _simulator(root, workdir, pki) as (pid, port):
        context = _client_context(pki)
        clients = [_Client(port, context) for _ in range(load.connections)]
        counter = _Counter()
        stop = time.monotonic() + load.warmup_s + load.seconds
        threads = [
            threading.Thread(target=_drive, args=(client, load, stop, counter))
            for client in clients
        ]
        for thread in threads:
            thread.start()
        time.sleep(load.warmup_s)
        cpu_before, done_before = own_cpu(pid), counter.commands
        started = time.monotonic()
        for thread in threads:
            thread.join()
        cpu = own_cpu(pid) - cpu_before
        commands = counter.commands - done_before
        elapsed = time.monotonic() - started
        for client in clients:
            client.close()
    return RunResult(
        root,
        cpu.total_s / commands * 1e6,
        cpu.user_s / commands * 1e6,
        commands / elapsed,
        counter.errors,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1700.0, help="0: unpaced")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    args = parser.parse_args(argv)
    roots = [root.resolve() for root in args.root] or [_ROOT]
    load = Load(args.connections, args.depth, args.rate, args.seconds, args.warmup)

    results: dict[Path, list[RunResult]] = {root: [] for root in roots}
    with tempfile.TemporaryDirectory(prefix="simbench-") as tmp:
        pki = mint(Path(tmp) / "pki")
        for _ in range(args.rounds):
            for root in roots:
                result = run_once(root, Path(tmp), pki, load)
                results[root].append(result)
                print(
                    f"{root}: {result.cpu_us_per_command:6.1f} us CPU/command "
                    f"({result.user_us_per_command:5.1f} user), "
                    f"{result.commands_per_s:6.0f} commands/s, "
                    f"{result.errors} errors",
                    flush=True,
                )
    for root, runs in results.items():
        cpu = [run.cpu_us_per_command for run in runs]
        print(
            f"{root}: min {min(cpu):.1f} median {statistics.median(cpu):.1f} "
            f"spread {max(cpu) - min(cpu):.1f} us CPU/command"
        )


if __name__ == "__main__":
    main()
