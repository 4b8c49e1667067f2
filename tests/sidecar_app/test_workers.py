"""The supervisor, as an operator runs it: ``python -m sidecar serve`` with
``[server] workers = 2`` on ephemeral ports, over plain HTTP (development
mode) with no HSM reachable, so each start takes about a second."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import pytest
import trio

from fixtures.pki import Pki
from tests.sidecar_app.conftest import ROOT, ConfigFile, sign

HEALTH_PATH = "/dev/kms/xks/v1/health"
START_TIMEOUT_S = 30.0
# Enough connections that both workers get some: the kernel spreads them by
# a hash of the address pair, so all 24 on one worker has odds of 2**-23.
CONNECTIONS = 24

pytestmark = pytest.mark.slow


@dataclass
class Supervisor:
    child: subprocess.Popen[bytes]
    ready_file: Path
    log: Path

    def ready(self) -> dict[str, Any]:
        document = json.loads(self.ready_file.read_text())
        assert isinstance(document, dict)
        return document

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def messages(self) -> list[str]:
        return [str(record["msg"]) for record in self.records()]


def two_worker_config(config_file: ConfigFile) -> Path:
    """The base configuration on plain HTTP, two workers, a ping port."""
    text = config_file.text
    tls = text[text.index("[server.tls]") : text.index("[[keystore]]")]
    server = (
        "port = 0\nallow_plaintext_for_development = true\nping_port = 0\nworkers = 2\n"
    )
    text = text.replace(tls, "").replace("port = 0\n", server, 1)
    return config_file.write(text.replace("port = 9100\n", "port = 1\n"))


@contextmanager
def supervisor(config: Path, folder: Path) -> Iterator[Supervisor]:
    ready, log_path = folder / "ready.json", folder / "sidecar.log"
    command = [sys.executable, "-m", "sidecar", "serve", "--config", str(config)]
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [*command, "--ready-file", str(ready)], cwd=ROOT, stderr=log
        )
    running = Supervisor(child, ready, log_path)
    try:
        yield running
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def wait_for(condition: Any, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.05)


def wait_until_ready(running: Supervisor) -> dict[str, Any]:
    wait_for(
        lambda: running.ready_file.exists() or running.child.poll() is not None,
        "ready file",
    )
    assert running.child.poll() is None, running.log.read_text()[-3000:]
    return running.ready()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def health(port: int) -> tuple[int, bytes]:
    """One GetHealthStatus on a connection of its own: (status, body)."""
    body = b'{"requestMetadata":{"kmsRequestId":"w","kmsOperation":"KmsHealthCheck"}}'
    headers = [*sign(HEALTH_PATH, body), (b"content-length", str(len(body)).encode())]
    client = h11.Connection(h11.CLIENT)
    raw = client.send(h11.Request(method="POST", target=HEALTH_PATH, headers=headers))
    status, chunks = 0, []
    with trio.fail_after(10):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(raw + body)
            while not isinstance(event := client.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    client.receive_data(bytes(await stream.receive_some(65536)))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
    return status, b"".join(chunks)


async def test_two_workers_share_an_ephemeral_port_both_answer_alike(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    with supervisor(two_worker_config(config_file), tmp_path) as running:
        document = wait_until_ready(running)
        port = document["ports"]["xks"]
        answers = [await health(port) for _ in range(CONNECTIONS)]
        records = running.records()

    pids = document["workers"]
    assert len(set(pids)) == 2
    assert running.child.pid not in pids
    assert isinstance(document["ports"]["ping"], int)
    assert {status for status, _ in answers} == {200}
    # GetHealthStatus answers the same from either worker ...
    assert len({body for _, body in answers}) == 1
    audit = [r for r in records if r["logger"] == "sidecar.audit"]
    assert {r["worker"] for r in audit} == {0, 1}
    # ... because only worker 0 probes the HSM; worker 1 follows.
    assert {r["worker"] for r in records if r["logger"] == "sidecar.health"} == {0}


async def test_a_worker_that_dies_is_started_again(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    with supervisor(two_worker_config(config_file), tmp_path) as running:
        document = wait_until_ready(running)
        victim = document["workers"][1]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: running.ready()["workers"][1] != victim, "a new worker 1")
        replacement = running.ready()["workers"][1]
        status, _ = await health(document["ports"]["xks"])
        messages = running.messages()

    assert not alive(victim)
    assert replacement != victim
    assert status == 200
    assert any(
        m.startswith("worker 1 exited with status -9") and "restarting in" in m
        for m in messages
    )


def test_sigterm_stops_every_worker_gracefully(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    with supervisor(two_worker_config(config_file), tmp_path) as running:
        pids = wait_until_ready(running)["workers"]
        running.child.send_signal(signal.SIGTERM)
        status = running.child.wait(timeout=30)

    assert status == 0
    assert not running.ready_file.exists()
    assert not any(alive(pid) for pid in pids)
    stopped = {
        r.get("worker") for r in running.records() if r["msg"] == "sidecar stopped"
    }
    assert stopped == {0, 1}
    assert running.messages()[-1] == "supervisor stopped"


def test_a_worker_that_cannot_start_fails_the_start(
    config_file: ConfigFile, pki: Pki, tmp_path: Path
) -> None:
    # The configuration loads (both files exist), but the key does not match
    # the certificate: only building the TLS context, in each worker, fails.
    text = config_file.text.replace(
        str(pki.sidecar_server_key), str(pki.sidecar_server_rsa_key)
    ).replace("port = 0\n", "port = 0\nworkers = 2\n", 1)

    with supervisor(config_file.write(text), tmp_path) as running:
        status = running.child.wait(timeout=30)

    messages = running.messages()
    assert status == 1
    assert any(m.startswith("cannot run:") for m in messages)
    assert any("while starting; stopping" in m for m in messages)
    assert not running.ready_file.exists()
