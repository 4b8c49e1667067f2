"""The link itself: pooling, pipelining, deadlines, mutual TLS, closing, logs."""

from __future__ import annotations

import base64
import logging

import pytest
import trio

from sidecar.xks.errors import DependencyTimeoutException, InternalException
from tests.backends.conftest import BackendFactory, Cluster, SimNode, eventually

AAD = b"aad"
# Room for scheduling noise on a busy 2-core CI machine.
SLACK_S = 0.1


async def test_many_concurrent_requests_share_one_pipelined_connection(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    # A generous deadline: this test is about pipelining, not deadlines.
    backend = make_backend(sim, pool_size=1, request_timeout_s=2.0)
    sim.faults.latency_ms = 50
    plaintexts = [f"message {i}".encode() for i in range(40)]
    opened: dict[int, bytes] = {}

    async def round_trip(index: int) -> None:
        sealed = await backend.encrypt("foo", plaintexts[index], AAD)
        opened[index] = await backend.decrypt("foo", *sealed, AAD)

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for index in range(len(plaintexts)):
            nursery.start_soon(round_trip, index)
    elapsed = trio.current_time() - started

    assert [opened[i] for i in range(len(plaintexts))] == plaintexts
    assert sim.connections_total() == 1
    # 80 requests of 50 ms each: one at a time would take 4 s.
    assert elapsed < 1.0


async def test_pool_grows_to_its_size_under_load_and_no_further(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, pool_size=2, request_timeout_s=2.0)
    sim.faults.latency_ms = 20

    for _ in range(3):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(backend.encrypt, "foo", b"x", AAD)

    assert sim.connections_total() == 2


@pytest.mark.parametrize(("depth", "connections"), [(16, 1), (4, 2)])
async def test_a_second_connection_opens_only_once_the_first_runs_deep(
    sim: SimNode, make_backend: BackendFactory, depth: int, connections: int
) -> None:
    backend = make_backend(
        sim, pool_size=2, pipeline_depth=depth, request_timeout_s=2.0
    )
    sim.faults.latency_ms = 20

    for _ in range(3):  # ten at a time: deeper than 4, shallower than 16
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(backend.encrypt, "foo", b"x", AAD)

    assert sim.connections_total() == connections


async def test_deadline_gives_dependency_timeout_and_the_connection_survives(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, request_timeout_s=0.15)
    await backend.encrypt("foo", b"warm-up", AAD)
    sim.faults.latency_ms = 400

    started = trio.current_time()
    with pytest.raises(DependencyTimeoutException):
        await backend.encrypt("foo", b"slow", AAD)
    elapsed = trio.current_time() - started

    assert 0.15 <= elapsed < 0.15 + SLACK_S
    assert backend.in_flight() == 0
    sim.faults.latency_ms = 0
    await trio.sleep(0.4)  # the late reply arrives and must be discarded
    sealed = await backend.encrypt("foo", b"after", AAD)
    assert await backend.decrypt("foo", *sealed, AAD) == b"after"
    assert sim.connections_total() == 1


async def test_dropped_reply_times_out_without_leaking_a_waiter(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, request_timeout_s=0.3)
    await backend.describe_key("foo")
    sim.faults.drop_rate = 1.0

    with pytest.raises(DependencyTimeoutException):
        await backend.encrypt("foo", b"x", AAD)

    assert backend.in_flight() == 0
    sim.faults.drop_rate = 0.0
    assert (await backend.encrypt("foo", b"x", AAD)).key_version == 1
    assert sim.connections_total() == 1


async def test_client_cert_from_a_foreign_ca_is_internal_exception_not_a_hang(
    cluster: Cluster, sim: SimNode, make_backend: BackendFactory
) -> None:
    foreign = cluster.node_settings(
        sim,
        client_cert=cluster.pki.foreign_hsm_client_cert,
        client_key=cluster.pki.foreign_hsm_client_key,
    )
    backend = make_backend(foreign, request_timeout_s=2.0)

    started = trio.current_time()
    with pytest.raises(InternalException):
        await backend.encrypt("foo", b"x", AAD)

    assert trio.current_time() - started < 1.0
    assert sim.count("GCEN") == 0


async def test_node_certificate_for_another_name_is_refused(
    cluster: Cluster, sim: SimNode, make_backend: BackendFactory
) -> None:
    wrong_name = cluster.node_settings(sim, server_name="hsm.example.invalid")
    backend = make_backend(wrong_name)

    with pytest.raises(InternalException) as caught:
        await backend.describe_key("foo")

    assert "certificate" in str(caught.value.reason).lower()
    assert sim.connections_total() == 0


async def test_aclose_ends_connections_and_refuses_later_calls(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    await backend.describe_key("foo")

    await backend.aclose()

    with pytest.raises(InternalException):
        await backend.encrypt("foo", b"x", AAD)
    await eventually(lambda: sim.connections_open() == 0)


async def test_logs_connections_but_never_plaintext_or_aad(
    sim: SimNode, make_backend: BackendFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plaintext, aad = b"PLAINTEXT-CANARY-123", b"AAD-CANARY-456"
    backend = make_backend(sim, request_timeout_s=0.1)
    sealed = await backend.encrypt("foo", plaintext, aad)
    sim.faults.latency_ms = 200
    with pytest.raises(DependencyTimeoutException):
        await backend.decrypt("foo", *sealed, aad)
    await trio.sleep(0.3)  # the late reply, carrying the plaintext, arrives

    ours = [r for r in caplog.records if r.name.startswith("sidecar")]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert any("connection opened" in r.getMessage() for r in ours)
    for secret in (plaintext, aad):
        assert secret.decode() not in text
        assert base64.b64encode(secret).decode() not in text
