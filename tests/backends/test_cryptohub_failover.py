"""Node failures: refused and dropped connections, outage, failover, recovery.

Backoffs are shortened (``node_backoff_s``) so recovery takes milliseconds.
"""

from __future__ import annotations

import pytest
import trio

from sidecar.xks.errors import DependencyTimeoutException, InternalException
from tests.backends.conftest import (
    BackendFactory,
    Cluster,
    SimNode,
    closed_port,
    eventually,
)

AAD = b"aad"
BACKOFF_S = 0.05


async def test_refused_connections_fail_fast_then_recover_when_cleared(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, node_backoff_s=BACKOFF_S, request_timeout_s=1.0)
    sim.faults.refuse_connections = True

    started = trio.current_time()
    with pytest.raises(InternalException):
        await backend.encrypt("foo", b"x", AAD)
    with pytest.raises(InternalException):  # marked down: not even tried
        await backend.encrypt("foo", b"x", AAD)
    assert trio.current_time() - started < 0.5

    sim.faults.clear()
    await trio.sleep(BACKOFF_S * 2)
    sealed = await backend.encrypt("foo", b"x", AAD)
    assert await backend.decrypt("foo", *sealed, AAD) == b"x"


async def test_outage_fails_requests_in_flight_then_recovers_when_cleared(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, node_backoff_s=BACKOFF_S)
    await backend.describe_key("foo")
    sim.faults.outage = True

    with pytest.raises(InternalException):
        await backend.encrypt("foo", b"x", AAD)

    sim.faults.clear()
    await trio.sleep(BACKOFF_S * 2)
    assert (await backend.encrypt("foo", b"x", AAD)).key_version == 1


async def test_nothing_listening_is_internal_exception(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(closed_port())

    with pytest.raises(InternalException):
        await backend.describe_key("foo")


async def test_requests_go_to_the_first_node_while_it_is_up(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    first, second = await cluster.start(), await cluster.start()
    backend = make_backend(first, second)

    for _ in range(5):
        await backend.encrypt("foo", b"x", AAD)

    assert (first.count("GCEN"), second.count("GCEN")) == (5, 0)
    assert second.connections_total() == 0


async def test_fails_over_to_the_next_node_when_the_first_refuses(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    first, second = await cluster.start(), await cluster.start()
    first.faults.refuse_connections = True
    backend = make_backend(first, second, node_backoff_s=BACKOFF_S)

    sealed = await backend.encrypt("foo", b"x", AAD)
    opened = await backend.decrypt("foo", *sealed, AAD)

    assert opened == b"x"
    assert (first.count("GCEN"), second.count("GCEN")) == (0, 1)


async def test_fails_over_when_unreachable_first_node_and_comes_back_to_it(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    first, second = await cluster.start(), await cluster.start()
    backend = make_backend(first, second, node_backoff_s=BACKOFF_S)
    await backend.encrypt("foo", b"x", AAD)
    first.faults.outage = True

    # The request in flight on the first node is lost with its connection and
    # retried on the second, within the same deadline.
    await backend.encrypt("foo", b"x", AAD)
    assert second.count("GCEN") == 1

    first.faults.clear()
    await trio.sleep(BACKOFF_S * 2)
    await backend.encrypt("foo", b"x", AAD)
    # The first node counts only the requests it answered: before and after.
    assert (first.count("GCEN"), second.count("GCEN")) == (2, 1)


async def test_a_request_is_retried_on_one_other_node_only(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    nodes = [await cluster.start() for _ in range(3)]
    nodes[0].faults.refuse_connections = True
    nodes[1].faults.refuse_connections = True
    backend = make_backend(*nodes, request_timeout_s=1.0)

    with pytest.raises(InternalException):
        await backend.encrypt("foo", b"x", AAD)
    assert nodes[2].connections_total() == 0

    # Both failed nodes are now down: the next request goes straight to the third.
    await backend.encrypt("foo", b"x", AAD)
    assert nodes[2].count("GCEN") == 1


async def test_a_node_that_stops_answering_is_abandoned_for_the_next(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    first, second = await cluster.start(), await cluster.start()
    backend = make_backend(first, second, request_timeout_s=0.2)
    await backend.encrypt("foo", b"x", AAD)
    first.faults.drop_rate = 1.0  # accepts requests, never answers

    for _ in range(3):
        with pytest.raises(DependencyTimeoutException):
            await backend.encrypt("foo", b"x", AAD)
    await backend.encrypt("foo", b"x", AAD)

    assert second.count("GCEN") == 1
    await eventually(lambda: first.connections_open() == 0)


async def test_a_slow_node_whose_replies_still_come_is_not_abandoned(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, request_timeout_s=0.1)
    await backend.encrypt("foo", b"x", AAD)
    sim.faults.latency_ms = 150  # each reply comes, too late for its request

    for _ in range(5):
        with pytest.raises(DependencyTimeoutException):
            await backend.encrypt("foo", b"x", AAD)
    sim.faults.latency_ms = 0
    await backend.encrypt("foo", b"x", AAD)

    assert sim.connections_total() == 1
