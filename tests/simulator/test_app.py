"""The assembled simulator and its command line."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from fixtures.pki import Pki
from simulator.app import BoundPorts, run_simulator
from simulator.cli import main
from simulator.config import load_config
from simulator.hostproto.codec import Frame
from simulator.masterkey import ENV_VAR
from tests.simulator.conftest import HostClient, client_tls_context
from tests.simulator.test_app_config import write_config

MASTER_KEY_HEX = "11" * 32


async def host_client(pki: Pki, port: int) -> HostClient:
    context = client_tls_context(
        pki, pki.sidecar_hsm_client_cert, pki.sidecar_hsm_client_key
    )
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    return HostClient(trio.SSLStream(tcp, context, server_hostname="localhost"))


async def test_the_simulator_serves_both_ports_over_a_seeded_store(
    tmp_path: Path, pki: Pki, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, MASTER_KEY_HEX)
    store = '[store]\npath = "var/keys.db"\nseed = true\n'
    config = load_config(write_config(tmp_path, pki, store=store))

    ports: BoundPorts = await nursery.start(run_simulator, config)

    client = await host_client(pki, ports.host_port)
    try:
        reply = await client.request(Frame.of("KINF", ID="a", KL="xks-health-check"))
        assert reply.get("ER") == "00"
        node = await client.request(Frame.of("NODE"))
        assert node.get("NI") == "n1"
    finally:
        await client.aclose()
    ssh = await trio.open_tcp_stream("127.0.0.1", ports.console_port)
    try:
        with trio.fail_after(5):
            assert (await ssh.receive_some(100)).startswith(b"SSH-2.0-")
    finally:
        await ssh.aclose()
    assert (tmp_path / "var" / "keys.db").is_file()


def test_init_master_key_writes_a_private_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sim" / "master.key"
    assert main(["init-master-key", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()

    assert main(["init-master-key", str(path)]) == 1
    assert path.read_bytes() == first
    assert "refusing to overwrite" in caplog.text
    assert first.decode().strip() not in caplog.text


def test_serve_with_a_bad_config_exits_1_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    assert main(["serve", "--config", str(tmp_path / "absent.toml")]) == 1
    assert "no such configuration file" in caplog.text


def test_serve_without_a_master_key_exits_1(
    tmp_path: Path,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert main(["serve", "--config", str(write_config(tmp_path, pki))]) == 1
    assert "no master key" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(
    tmp_path: Path, pki: Pki, signum: signal.Signals
) -> None:
    config = write_config(
        tmp_path, pki, store='[store]\npath = "keys.db"\nseed = true\n'
    )
    env = {**os.environ, ENV_VAR: MASTER_KEY_HEX}
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "simulator", "serve", "--config", str(config)],
            env=env,
            stderr=log_file,
        )
        try:
            _wait_for_text(child, log_path, "simulator running")
            child.send_signal(signum)
            child.wait(timeout=10)
        finally:
            child.kill()
            child.wait()
    stderr = log_path.read_text()
    assert child.returncode == 0, stderr
    assert f"stopping signal={signum.name}" in stderr
    assert "Traceback" not in stderr


def _wait_for_text(child: subprocess.Popen[bytes], log_path: Path, text: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and child.poll() is None:
        if text in log_path.read_text():
            return
        time.sleep(0.05)
    pytest.fail(f"the simulator never logged {text!r}:\n{log_path.read_text()}")
