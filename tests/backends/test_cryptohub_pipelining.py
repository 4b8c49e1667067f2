"""Who sends a request's frame, and in what order, on one HostConnection.

A request on an idle connection sends its own frame (no hand-off to the
writer task); on a busy connection frames queue for the writer, which sends
them together. Either way frames keep their order, deadlines hold, and a
request cancelled while sending strands no one else's frame.

The node here is scripted in memory (``ScriptedNode``): it records every
write and the task that made it, can hold a write as a full socket would
(a request's own send then hands the rest to the writer), and answers only
when the test says so.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from sidecar.backends.cryptohub.connection import HostConnection, Reply
from sidecar.backends.cryptohub.deadlines import DeadlineReaper
from sidecar.backends.cryptohub.errors import DeadlinePassed
from sidecar.backends.cryptohub.protocol import NO_FIELDS
from simulator.hostproto.codec import Frame

DEADLINE_S = 0.1
SLACK_S = 0.1  # scheduling noise on a busy 2-core machine
_IDS = re.compile(rb"ID([0-9a-f]+);")
# Every task that made a request through _request (to tell them from the
# connection's writer task).
REQUEST_TASKS: set[trio.lowlevel.Task] = set()


class ScriptedNode(trio.abc.Stream):
    """A node's end of the connection, driven by the test."""

    def __init__(self) -> None:
        self.writes: list[tuple[list[str], trio.lowlevel.Task]] = []
        self.hold: trio.Event | None = None  # while set up, writes wait for it
        self.answer_while_sending = False
        self._held: trio.Event | None = None  # what a partial send waits for
        self._send, self._receive = trio.open_memory_channel[bytes](100)

    def ids_written(self) -> list[list[str]]:
        return [ids for ids, _ in self.writes]

    def answer(self, *correlation_ids: str) -> None:
        """Reply to each ID, all in one read of the connection."""
        replies = [f"[AOECHO;ID{each};ER00;]" for each in correlation_ids]
        self._send.send_nowait("".join(replies).encode())

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        ids = self._record(data)
        if self.hold is not None:
            await self.hold.wait()
        if self.answer_while_sending:
            for correlation_id in ids:
                self.answer(correlation_id)
            await trio.testing.wait_all_tasks_blocked()  # the reader delivers

    def send_nowait(self, data: bytes | bytearray | memoryview) -> bool:
        """A send that never waits: under ``hold`` only part of it "fits"."""
        ids = self._record(data)
        if self.answer_while_sending:
            for correlation_id in ids:
                self.answer(correlation_id)
        self._held = self.hold
        return self.hold is None

    async def flush(self) -> None:
        """The rest of a held ``send_nowait``, once the hold is released."""
        held, self._held = self._held, None
        if held is not None:
            await held.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _record(self, data: bytes | bytearray | memoryview) -> list[str]:
        ids = [match.decode() for match in _IDS.findall(bytes(data))]
        self.writes.append((ids, trio.lowlevel.current_task()))
        return ids

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.fixture
def node() -> ScriptedNode:
    return ScriptedNode()


@pytest.fixture
async def connection(
    nursery: trio.Nursery, node: ScriptedNode
) -> AsyncIterator[HostConnection]:
    reaper = DeadlineReaper(tick_s=0.005)
    nursery.start_soon(reaper.run)
    opened = HostConnection(node, "scripted", 65536, lambda *_: None, reaper)
    nursery.start_soon(opened.run)
    yield opened
    opened.shutdown()


async def _request(
    connection: HostConnection,
    into: dict[str, Reply | BaseException],
    name: str,
    deadline: float = float("inf"),
) -> None:
    REQUEST_TASKS.add(trio.lowlevel.current_task())
    try:
        into[name] = await connection.request("ECHO", NO_FIELDS, deadline)
    except (DeadlinePassed, trio.Cancelled) as exc:
        into[name] = exc
        if isinstance(exc, trio.Cancelled):
            raise


async def test_a_request_on_an_idle_connection_sends_its_own_frame(
    connection: HostConnection, node: ScriptedNode
) -> None:
    tasks: list[trio.lowlevel.Task] = []

    async def ask() -> Reply:
        tasks.append(trio.lowlevel.current_task())
        return await connection.request("ECHO", NO_FIELDS)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        node.answer("1")

    assert node.ids_written() == [["1"]]
    assert node.writes[0][1] is tasks[0]


async def test_requests_on_a_busy_connection_go_out_together_in_order(
    connection: HostConnection, node: ScriptedNode
) -> None:
    replies: dict[str, Reply | BaseException] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_request, connection, replies, "first")
        await trio.testing.wait_all_tasks_blocked()
        for name in ("second", "third", "fourth"):
            nursery.start_soon(_request, connection, replies, name)
        await trio.testing.wait_all_tasks_blocked()
        for correlation_id in ("4", "2", "1", "3"):  # any order
            node.answer(correlation_id)

    assert node.ids_written() == [["1"], ["2", "3", "4"]]
    assert node.writes[0][1] in REQUEST_TASKS
    assert node.writes[1][1] not in REQUEST_TASKS  # the writer's, for all three
    assert replies["first"].get("ID") == "1"  # type: ignore[union-attr]
    assert sorted(reply.get("ID") or "" for _, reply in _frames(replies)) == [
        "1",
        "2",
        "3",
        "4",
    ]


async def test_callers_woken_together_send_their_next_frames_in_one_write(
    connection: HostConnection, node: ScriptedNode
) -> None:
    async def twice() -> None:
        await connection.request("ECHO", NO_FIELDS)
        await connection.request("ECHO", NO_FIELDS)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(twice)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(twice)
        nursery.start_soon(twice)
        await trio.testing.wait_all_tasks_blocked()
        node.answer("1", "2", "3")  # one read: three callers woken at once
        await trio.testing.wait_all_tasks_blocked()
        node.answer("4", "5", "6")

    # Not the first follow-up alone and the others after it: one write.
    assert node.ids_written() == [["1"], ["2", "3"], ["4", "5", "6"]]


async def test_frames_queued_behind_a_stalled_own_write_follow_it_in_order(
    connection: HostConnection, node: ScriptedNode
) -> None:
    node.hold = trio.Event()
    replies: dict[str, Reply | BaseException] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_request, connection, replies, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_request, connection, replies, "second")
        nursery.start_soon(_request, connection, replies, "third")
        await trio.testing.wait_all_tasks_blocked()
        assert node.ids_written() == [["1"]]  # nothing while the write stalls

        node.hold.set()
        node.hold = None
        await trio.testing.wait_all_tasks_blocked()
        for correlation_id in ("1", "2", "3"):
            node.answer(correlation_id)

    assert node.ids_written() == [["1"], ["2", "3"]]
    assert len(list(_frames(replies))) == 3


async def test_a_request_cancelled_before_its_own_write_is_out_strands_no_frame(
    connection: HostConnection, node: ScriptedNode
) -> None:
    """Its own send never waits: the writer finishes it, cancelled or not,
    and the frames queued behind it follow."""
    node.hold = trio.Event()
    replies: dict[str, Reply | BaseException] = {}
    async with trio.open_nursery() as nursery:
        first_scope = trio.CancelScope()
        nursery.start_soon(_cancellable, first_scope, connection, replies)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_request, connection, replies, "second")
        await trio.testing.wait_all_tasks_blocked()

        first_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert node.ids_written() == [["1"]]  # the rest of "1" still queued
        node.hold.set()
        node.hold = None
        await trio.testing.wait_all_tasks_blocked()
        node.answer("2")

    assert isinstance(replies["first"], trio.Cancelled)
    assert node.ids_written() == [["1"], ["2"]]
    assert [name for name, _ in _frames(replies)] == ["second"]


async def _cancellable(
    scope: trio.CancelScope,
    connection: HostConnection,
    replies: dict[str, Reply | BaseException],
) -> None:
    with scope:
        await _request(connection, replies, "first")


async def test_a_request_queued_behind_a_stalled_write_times_out_unsent(
    connection: HostConnection, node: ScriptedNode
) -> None:
    node.hold = trio.Event()
    replies: dict[str, Reply | BaseException] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_request, connection, replies, "first")
        await trio.testing.wait_all_tasks_blocked()
        deadline = trio.current_time() + DEADLINE_S
        with trio.fail_after(DEADLINE_S + SLACK_S):
            await _request(connection, replies, "second", deadline)
        timed_out_at = trio.current_time()

        node.hold.set()
        node.hold = None
        await trio.testing.wait_all_tasks_blocked()
        node.answer("1")

    assert isinstance(replies["second"], DeadlinePassed)
    assert deadline <= timed_out_at < deadline + SLACK_S
    assert node.ids_written() == [["1"]]  # the writer skipped the given-up frame


async def test_a_reply_that_comes_while_its_request_still_sends_is_kept(
    connection: HostConnection, node: ScriptedNode
) -> None:
    node.answer_while_sending = True
    with trio.fail_after(1):
        reply = await connection.request("ECHO", NO_FIELDS)

    assert isinstance(reply, Frame)
    assert reply.get("ID") == "1"


async def test_a_request_never_sends_its_own_frame_into_a_full_socket() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    while True:  # the node reads nothing: fill our send buffer
        try:
            ours.send(b"x" * 65536)
        except BlockingIOError:
            break
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    reaper = DeadlineReaper(tick_s=0.005)
    connection = HostConnection(stream, "full", 65536, lambda *_: None, reaper)

    with theirs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reaper.run)
            nursery.start_soon(connection.run)
            started = trio.current_time()
            with trio.fail_after(DEADLINE_S + 1), pytest.raises(DeadlinePassed):
                await connection.request("ECHO", NO_FIELDS, started + DEADLINE_S)
            timed_out_at = trio.current_time()
            nursery.cancel_scope.cancel()

    assert timed_out_at < started + DEADLINE_S + SLACK_S


def _frames(
    replies: dict[str, Reply | BaseException],
) -> Iterator[tuple[str, Frame]]:
    for name, reply in replies.items():
        if isinstance(reply, Frame):
            yield name, reply
