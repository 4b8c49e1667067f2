"""Who gets in: only clients with a certificate from the simulator's CA."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

from simulator.hostproto.codec import Frame, encode_frame
from tests.simulator.conftest import (
    HostClient,
    RunningSimulator,
    SimulatorFactory,
    eventually,
)


async def refused(
    simulator: RunningSimulator,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    anonymous: bool = False,
) -> bool:
    """True if the server refuses the client during or right after the handshake.

    With TLS 1.3 the client's handshake completes before the server checks the
    client certificate, so the refusal may only show on the first read.
    """
    try:
        client = await simulator.connect(cert, key, anonymous=anonymous)
        await client.send_raw(encode_frame(Frame.of("ECHO", ID="1")))
        return await client.closed_by_server()
    except (trio.BrokenResourceError, ssl.SSLError):
        return True


async def test_client_with_the_hsm_client_certificate_is_served(
    simulator: RunningSimulator,
) -> None:
    client = await simulator.connect()
    assert (await client.request(Frame.of("ECHO", ID="1"))).get("ER") == "00"
    assert client.stream.version() in {"TLSv1.2", "TLSv1.3"}


async def test_client_without_a_certificate_is_refused(
    simulator: RunningSimulator,
) -> None:
    assert await refused(simulator, anonymous=True)


async def test_client_from_another_ca_is_refused(simulator: RunningSimulator) -> None:
    pki = simulator.pki
    assert await refused(
        simulator, cert=pki.foreign_hsm_client_cert, key=pki.foreign_hsm_client_key
    )


async def test_refused_handshakes_are_not_counted_as_connections(
    simulator: RunningSimulator,
) -> None:
    assert await refused(simulator, anonymous=True)
    assert simulator.stats.snapshot()["connections_total"] == 0


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_tls_1_2_and_1_3_are_both_accepted(
    simulator: RunningSimulator, version: ssl.TLSVersion
) -> None:
    pki = simulator.pki
    context = ssl.create_default_context(cafile=pki.sim_ca_cert)
    context.load_cert_chain(pki.sidecar_hsm_client_cert, pki.sidecar_hsm_client_key)
    context.minimum_version = context.maximum_version = version
    tcp = await trio.open_tcp_stream("127.0.0.1", simulator.port)
    stream = trio.SSLStream(tcp, context, server_hostname="localhost")
    client = HostClient(stream)
    simulator.clients.append(client)

    reply = await client.request(Frame.of("ECHO", ID="v"))

    assert reply.get("ER") == "00"
    assert (
        stream.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    )


async def test_a_silent_client_is_dropped_at_the_handshake_timeout(
    simulators: SimulatorFactory,
) -> None:
    simulator = await simulators.start(handshake_timeout_s=0.3)
    tcp = await simulator.connect_tcp()
    try:
        with trio.fail_after(3):
            assert await tcp.receive_some(100) == b""
    finally:
        await tcp.aclose()


async def test_an_idle_connection_is_closed(simulators: SimulatorFactory) -> None:
    simulator = await simulators.start(idle_timeout_s=0.3)
    client = await simulator.connect()
    started = trio.current_time()
    assert await client.closed_by_server()
    assert trio.current_time() - started >= 0.25
    await eventually(lambda: simulator.stats.snapshot()["connections_open"] == 0)
