"""The pieces of multi-process serving, in process: configuration, reserved
ports, the supervisor link's framing, and health shared between workers."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
import trio
import trio.testing

from sidecar.backends.base import NodeState, NodeStatus
from sidecar.config import ConfigError, HealthSettings, load_config
from sidecar.config_server import available_cpus
from sidecar.dataplane.sockets import open_listeners
from sidecar.health import HealthMonitor
from sidecar.worker_link import (
    LineReader,
    LinkError,
    encode,
    health_message,
    health_nodes,
    ready_message,
)
from sidecar.workers import reserve_ports, worker_config
from sidecar.xks.responses import EkmNode
from tests.sidecar_app.conftest import ConfigFile

NODES = (EkmNode("hub-1", "CryptoHub 7.1", "DEGRADED"),)


# -- configuration -----------------------------------------------------------------


def with_server_lines(config_file: ConfigFile, lines: str) -> ConfigFile:
    config_file.text = config_file.text.replace("port = 0\n", f"port = 0\n{lines}", 1)
    return config_file


def test_one_worker_unless_configured(config_file: ConfigFile) -> None:
    assert load_config(config_file.write()).server.workers == 1


@pytest.mark.parametrize(
    ("setting", "expected"), [("3", 3), ('"auto"', available_cpus())]
)
def test_workers_is_a_number_or_auto(
    config_file: ConfigFile, setting: str, expected: int
) -> None:
    path = with_server_lines(config_file, f"workers = {setting}\n").write()

    assert load_config(path).server.workers == expected


@pytest.mark.parametrize(
    ("setting", "message"),
    [("0", "between 1 and 256"), ('"many"', 'whole number or "auto"'), ("2.0", "")],
)
def test_bad_workers_settings_are_refused(
    config_file: ConfigFile, setting: str, message: str
) -> None:
    path = with_server_lines(config_file, f"workers = {setting}\n").write()

    with pytest.raises(ConfigError, match=rf"\[server\] workers: .*{message}"):
        load_config(path)


# -- ports ----------------------------------------------------------------------------


async def test_reserved_ports_are_shared_by_workers_and_only_they_answer(
    config_file: ConfigFile,
) -> None:
    config = load_config(with_server_lines(config_file, "ping_port = 0\n").write())
    ports = reserve_ports(config)
    try:
        dataplane = worker_config(config, ports).server.dataplane
        first = await open_listeners("127.0.0.1", ports.xks, reuse_port=True, backlog=8)
        second = await open_listeners(
            "127.0.0.1", ports.xks, reuse_port=True, backlog=8
        )
        # Every connection lands on a listening worker socket, never on the
        # reserving one (which does not listen).
        for _ in range(8):
            client = await trio.open_tcp_stream("127.0.0.1", ports.xks)
            with trio.fail_after(5):
                accepted = await _accept_either(first[0], second[0])
            await client.aclose()
            await accepted.aclose()
        for listener in (*first, *second):
            await listener.aclose()
    finally:
        ports.close()

    assert ports.xks > 0
    assert ports.ping is not None
    assert ports.ping != ports.xks
    assert (dataplane.port, dataplane.ping_port) == (ports.xks, ports.ping)
    assert dataplane.reuse_port


async def _accept_either(
    a: trio.SocketListener, b: trio.SocketListener
) -> trio.SocketStream:
    accepted: list[trio.SocketStream] = []
    async with trio.open_nursery() as nursery:

        async def accept(listener: trio.SocketListener) -> None:
            accepted.append(await listener.accept())
            nursery.cancel_scope.cancel()

        nursery.start_soon(accept, a)
        nursery.start_soon(accept, b)
    return accepted[0]


def test_a_port_held_by_another_program_cannot_be_reserved(
    config_file: ConfigFile,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = load_config(config_file.edited("port = 0\n", f"port = {port}\n"))

        with pytest.raises(OSError, match="in use"):
            reserve_ports(config)


# -- the link's framing ------------------------------------------------------------


async def test_link_messages_survive_being_cut_into_pieces() -> None:
    sent = encode(ready_message({"xks": 1})) + encode(health_message("hub", NODES, 2))
    ours, theirs = trio.testing.memory_stream_pair()
    reader = LineReader(theirs)

    async with trio.open_nursery() as nursery:

        async def dribble() -> None:
            for i in range(len(sent)):
                await ours.send_all(sent[i : i + 1])
            await ours.aclose()

        nursery.start_soon(dribble)
        ready = await reader.receive()
        health = await reader.receive()
        end = await reader.receive()

    assert ready == {"kind": "ready", "ports": {"xks": 1}}
    assert health is not None
    assert health_nodes(health) == NODES
    assert health["age_s"] == 2
    assert end is None


@pytest.mark.parametrize(
    "line", [b"not json\n", b"[1]\n", b'{"no":"kind"}\n', b"x" * 70000]
)
async def test_anything_but_a_link_message_is_refused(line: bytes) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    await ours.send_all(line)

    with pytest.raises(LinkError):
        await LineReader(theirs).receive()


def test_malformed_health_nodes_are_refused() -> None:
    message: dict[str, object] = {"kind": "health", "nodes": [["hub-1", "m", "X"]]}

    with pytest.raises(LinkError):
        health_nodes(message)


# -- health shared between workers ----------------------------------------------------


class OneNode:
    async def probe(self, health_key_id: str) -> list[NodeStatus]:
        return [NodeStatus("hub-1", NodeState.DEGRADED, "n", "CryptoHub", "7.1", 0, "")]


def monitor(published: list[Sequence[EkmNode]] | None = None) -> HealthMonitor:
    on_result = published.append if published is not None else None
    settings = HealthSettings(interval_s=5, max_age_s=60)
    return HealthMonitor("hub", OneNode(), ["hub-1"], settings, on_result=on_result)


async def test_the_probing_worker_publishes_every_result() -> None:
    published: list[Sequence[EkmNode]] = []

    await monitor(published).check_now()

    assert published == [NODES]


async def test_a_follower_listens_once_it_has_a_result_and_reports_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    follower = monitor()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_adopt_later, follower)
        started_at = trio.current_time()
        await nursery.start(follower.follow)
        waited = trio.current_time() - started_at
        reported = follower.report().ekm_fleet_details
        nursery.cancel_scope.cancel()

    assert waited == pytest.approx(3)
    assert tuple(reported) == NODES


async def _adopt_later(follower: HealthMonitor) -> None:
    await trio.sleep(3)
    follower.adopt(NODES, 0.0)


async def test_an_adopted_result_goes_stale_by_its_age_at_the_prober(
    autojump_clock: trio.testing.MockClock,
) -> None:
    follower = monitor()
    follower.adopt(NODES, 50.0)  # probed 50 s ago in worker 0

    fresh = follower.report().ekm_fleet_details[0].health_status
    await trio.sleep(11)
    stale = follower.report().ekm_fleet_details[0]

    assert fresh == "DEGRADED"
    assert (stale.health_status, stale.model) == ("UNAVAILABLE", "CryptoHub 7.1")


async def test_a_follower_without_results_starts_reporting_unavailable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    follower = monitor()
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.follow)  # gives up after max_age_s
        status = follower.report().ekm_fleet_details[0].health_status
        nursery.cancel_scope.cancel()

    assert status == "UNAVAILABLE"
