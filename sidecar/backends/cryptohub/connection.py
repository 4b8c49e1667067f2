"""One mutual-TLS connection to a node, carrying many requests at once.

The host protocol lets a client pipeline (docs/host-protocol.md,
"Pipelining"): requests go out without waiting, each tagged with an ``ID``,
and replies come back in any order carrying their request's ``ID``. Here:

* ``request`` may be called by any number of tasks at once. It tags the frame
  with the next ID from this connection's counter, sends it or queues it for
  the writer, and waits for the reply with that ID, or for its deadline
  (``deadlines``: no cancel scope per request).
* On an idle node (nothing in flight on any of its connections, nothing
  queued or being sent, no request woken with its reply still to run) the
  request sends its own frame, with a send that never waits: a hand-off to
  the writer would cost a task step, the largest single cost of a command
  with one caller; what the socket does not take at once the writer sends.
  Otherwise the frame queues for the writer task, which writes
  whatever has queued up meanwhile as one write: fewer TLS records and
  system calls under load. Only one of them sends at a time, so frames never
  interleave and keep their order. A queued frame whose request already
  gave up is not sent at all.
* The reader task decodes replies and hands each to the waiting request,
  rescheduling its task directly.

Why a writer task rather than a lock around ``send_all``: a request's
deadline or cancellation may end it at any moment, and it must not leave
other requests' frames behind it, nor wait on a socket past its deadline.
No request ever cancels the writer, so a timeout costs one request, never
the connection; a request sends for itself only with a send that cannot
wait (``_may_send_at_once``), and frames queued meanwhile go to the writer,
not into the stream behind it.

A request that ends for any reason (reply, deadline, cancellation) removes
its waiter on the way out, so a reply that never comes leaks nothing, and a
late reply finds no waiter and is discarded by its ID.

When the connection ends, every request still waiting fails with
ConnectionLost, and the owner (``node.Node``) is told whether requests were
lost with it, which is what marks a node down.
"""

from __future__ import annotations

import fcntl
import logging
import math
import sys
import termios
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from sidecar.backends.cryptohub.deadlines import DeadlineReaper
from sidecar.backends.cryptohub.errors import ConnectionLost, DeadlinePassed
from sidecar.backends.cryptohub.protocol import Fields, request_frame
from simulator.hostproto.codec import (
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameError,
    Tag,
)

log = logging.getLogger("sidecar.backends.cryptohub")

Reply = Frame | FrameError
# (connection, why it ended, whether requests were waiting on it)
ClosedCallback = Callable[["HostConnection", str, bool], None]

# One read's worth; a whole default-size frame fits. Chosen, not measured.
_RECEIVE_BYTES: Final = 65536
_ID: Final = Tag.ID.value
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class WokenRequests:
    """How many requests of a node's connections were woken with their reply
    (or their end) and have not run yet.

    While some have not, a request must not send its own frame: they are
    likely to send too in the same scheduler pass, and the writer should take
    all their frames in one write (``HostConnection._may_send_at_once``).
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class _Waiter:
    """One request's place in line for its reply, or for its deadline.

    The request's task parks itself here and is rescheduled directly by
    whoever settles it (the reader with the reply, the deadline reaper, the
    connection ending), rather than through a ``trio.Event``: the same wake-up
    without the Event's set of tasks and its closure, about 3,700 instructions
    (~1 us) less per request (callgrind, a park and wake between two tasks).
    """

    __slots__ = ("done", "expired", "reply", "task", "woken")

    def __init__(self, woken: WokenRequests) -> None:
        self.woken = woken
        self.done = False
        self.expired = False
        self.reply: Reply | None = None
        self.task: trio.lowlevel.Task | None = None

    def settle(self) -> None:
        """Wake the request (a reply, its end, or its deadline decided)."""
        self.done = True
        task = self.task
        if task is not None:
            self.task = None
            self.woken.count += 1  # until the task runs: see WokenRequests
            trio.lowlevel.reschedule(task)

    def expire(self) -> None:
        if not self.done:
            self.expired = True
            self.settle()

    def abort(self, _: object) -> trio.lowlevel.Abort:
        """The parked request was cancelled (``wait_task_rescheduled``)."""
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


class HostConnection:
    """A TLS stream to one node, shared by every request sent over it."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        node_name: str,
        max_frame_bytes: int,
        on_closed: ClosedCallback,
        deadlines: DeadlineReaper,
        woken: WokenRequests | None = None,
    ) -> None:
        self._stream = stream
        self._woken = woken or WokenRequests()  # shared by the node's connections
        self._node_name = node_name
        self._max_frame_bytes = max_frame_bytes
        self._on_closed = on_closed
        self._deadlines = deadlines
        self._waiters: dict[str, _Waiter] = {}
        # IDs are this counter in hex: 16 hex digits, the most an ID may hold,
        # last 2**64 requests, so the counter never needs to wrap.
        self._last_id = 0
        # Frames waiting for the writer, by ID; it takes them all at once.
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._writer: trio.lowlevel.Task | None = None  # while it waits for work
        self._sending = False  # a send_all (writer's or a request's) under way
        # The stream's non-waiting send (``ClientTlsStream.send_nowait``);
        # without one, every frame goes through the writer.
        self._send_nowait: Callable[[bytes], bool] | None = getattr(
            stream, "send_nowait", None
        )
        self._flush_stream: Callable[[], Awaitable[None]] = getattr(
            stream, "flush", trio.lowlevel.checkpoint
        )
        self._leftover = False  # part of a request's own send is still queued
        self._taken = 0  # frames handed to the stream (sent, or skipped)
        self._scope = trio.CancelScope()
        self._ended: str | None = None  # why the connection ended, once it has
        self._lost: str | None = None  # why, when ended from inside or by abandon
        self._owner_knows = False  # ended by the owner: do not report a loss
        self.replies_received = 0  # every frame read, late ones included

    @property
    def in_flight(self) -> int:
        """Requests sent and still waiting for their reply."""
        return len(self._waiters)

    async def request(
        self,
        command: str,
        fields: Fields,
        deadline: float = math.inf,
        elsewhere_idle: bool = True,
    ) -> Reply:
        """Send one request and wait for its reply.

        Raises DeadlinePassed at ``deadline`` (Trio time; see ``deadlines``)
        and ConnectionLost if the connection ends first. The caller's cancel
        scope bounds it too. ``elsewhere_idle``: no request of the caller's
        is in flight on another connection (see ``_may_send_at_once``).
        """
        if self._ended is not None:
            raise ConnectionLost(f"node {self._node_name}: {self._ended}")
        self._last_id += 1
        correlation_id = format(self._last_id, "x")
        data = request_frame(command, correlation_id, fields)

        waiters = self._waiters
        direct = (
            elsewhere_idle
            and not waiters
            and not self._woken.count
            and self._may_send_at_once()
        )
        waiter = waiters[correlation_id] = _Waiter(self._woken)
        if deadline != math.inf:
            self._deadlines.watch(deadline, waiter)
        try:
            if direct:
                self._send_directly(data)
            else:
                self._outbox.append((correlation_id, data))
                if not self._sending:
                    self._wake_writer()
            if not waiter.done:  # settled already if the connection ended
                # Parked here rather than in a method of the waiter: one
                # coroutine less to create and to resume through.
                waiter.task = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(waiter.abort)
                self._woken.count -= 1  # rescheduled by settle, now running
        finally:
            waiters.pop(correlation_id, None)

        if waiter.reply is not None:
            return waiter.reply
        if waiter.expired:
            raise DeadlinePassed(f"node {self._node_name}: no reply in time")
        raise ConnectionLost(f"node {self._node_name}: {self._ended}")

    def _may_send_at_once(self) -> bool:
        """True if a request on this connection may send its frame from its
        own task: the stream can send without waiting, and nothing is queued
        or being sent.

        Why: handing a frame to the writer task costs a task step, the
        largest single cost of a command when requests come one at a time
        (tests/bench/backend_bench.py, one caller: 257-263 -> 228-259 us per
        command). But only when nothing at all is in flight, on this
        connection or the node's others (the caller checks), and no request
        woken with its reply is still to run (``WokenRequests``): under load
        the writer's batching is worth more than the step. A frame sent alone
        while others follow in the same scheduler pass splits the burst in
        two writes, the node answers in two bursts, and the pipeline settles
        into smaller batches with more wake-ups on both sides (32 callers:
        59-65 us per command without own sends, 73-87 with them whenever the
        connection was idle).

        A request sending for itself must never wait on the socket, or a
        node that stopped reading would hold it past its deadline, which only
        the waiter (``deadlines``) enforces: so it uses the stream's
        ``send_nowait``, and whatever the socket does not take at once is
        left to the writer (``_send_directly``).
        """
        return (
            self._send_nowait is not None
            and not self._outbox
            and not self._sending
            and not self._scope.cancel_called  # ending: as before, send nothing
        )

    def _send_directly(self, data: bytes) -> None:
        """Send a request's frame from the request's own task, without
        waiting (see ``_may_send_at_once``).

        If the socket takes only part of it, the rest stays queued in the
        stream and the writer sends it, ahead of the frames queued after this
        one, which wait in the outbox meanwhile (``_sending``).
        """
        assert self._send_nowait is not None
        self._taken = self._last_id  # the outbox is empty: every frame so far
        try:
            if self._send_nowait(data):
                return
        except _GONE as exc:
            # As in the writer: the reader's task ends the connection, which
            # fails this request (and any other) with ConnectionLost.
            self._lose(exc)
            return
        self._sending = True
        self._leftover = True
        self._wake_writer()

    def heard_nothing_since(self, replies_before: int) -> bool:
        """True if the node has said nothing since ``replies_received`` was
        ``replies_before``, although every request was handed to it.

        Not when replies sit unread in our socket, or requests unsent in our
        outbox: then it is this process that is behind (overload, a stall),
        not the node that is silent, and a slow node is not a hung one.
        """
        return (
            self.replies_received == replies_before
            and self._taken == self._last_id
            and _unread_bytes(self._stream) == 0
        )

    def shutdown(self) -> None:
        """End the connection now (the backend is closing); not a failure."""
        self._owner_knows = True
        self._scope.cancel()

    def abandon(self, reason: str) -> None:
        """End the connection now because the node stopped answering on it;
        requests still waiting fail with ConnectionLost."""
        self._owner_knows = True
        self._lost = reason
        self._scope.cancel()

    async def run(self) -> None:
        """Read and write until the connection ends, then fail the waiters."""
        reason = "shut down"
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop)
                    reason = await self._read_loop()
                    nursery.cancel_scope.cancel()
        finally:
            self._finish(self._lost or reason)
            await trio.aclose_forcefully(self._stream)

    async def _read_loop(self) -> str:
        decoder = FrameDecoder(self._max_frame_bytes)
        while True:
            try:
                data = await self._stream.receive_some(_RECEIVE_BYTES)
            except _GONE as exc:
                return f"connection lost: {describe_failure(exc)}"
            if not data:
                return "closed by the node"
            decoder.receive_data(data)
            while (event := decoder.next_event()) is not NEED_DATA:
                self._deliver(event)

    def _deliver(self, reply: Reply) -> None:
        self.replies_received += 1
        # The ID as sent back, unchecked: only valid IDs are keys of _waiters.
        sent_back = reply.get(_ID) if type(reply) is Frame else reply.correlation_id
        waiter = self._waiters.pop(sent_back, None) if sent_back else None
        if waiter is not None:
            waiter.reply = reply
            waiter.settle()
        elif reply.correlation_id is not None:
            # Its request timed out or was cancelled: expected, and harmless.
            log.debug(
                "late reply discarded node=%s id=%s",
                self._node_name,
                reply.correlation_id,
            )
        else:
            # Every request we send carries an ID; this reply cannot be matched
            # and its request will time out.
            log.warning("reply without ID discarded node=%s", self._node_name)

    async def _write_loop(self) -> None:
        outbox = self._outbox
        try:
            while True:
                if self._leftover:  # the rest of a request's own send
                    try:
                        await self._flush_stream()
                    finally:
                        self._leftover = False
                        self._sending = False
                    continue
                if not outbox:
                    self._writer = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
                    continue
                batch = self._take_outbox()
                if batch:
                    self._sending = True
                    try:
                        await self._stream.send_all(batch)
                    finally:
                        self._sending = False
        except _GONE as exc:
            self._lose(exc)

    def _wake_writer(self) -> None:
        writer = self._writer
        if writer is not None:
            self._writer = None
            trio.lowlevel.reschedule(writer)

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._writer = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _lose(self, exc: BaseException) -> None:
        self._lost = f"connection lost: {describe_failure(exc)}"
        self._scope.cancel()

    def _take_outbox(self) -> bytes:
        """Every frame queued, as one write, less those nobody waits for any
        more: a request that timed out before it was sent (this process fell
        behind) would only add to the node's queue."""
        frames = []
        waiting = self._waiters
        while self._outbox:
            correlation_id, data = self._outbox.popleft()
            if correlation_id in waiting:
                frames.append(data)
        self._taken = self._last_id
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def _finish(self, reason: str) -> None:
        self._ended = reason
        lost_requests = bool(self._waiters) and not self._owner_knows
        self._outbox.clear()
        for waiter in self._waiters.values():
            waiter.settle()  # no reply: the request raises ConnectionLost
        self._waiters.clear()
        self._on_closed(self, reason, lost_requests)


def _socket_of(stream: trio.abc.Stream) -> Any:
    """The socket under ``stream`` (``ClientTlsStream.socket``, or a Trio
    stream's), or None when it has none."""
    transport = getattr(stream, "transport_stream", stream)
    return getattr(transport, "socket", None)


def _unread_bytes(stream: trio.abc.Stream) -> int:
    """Bytes the kernel holds for us on ``stream``'s socket, not yet read
    (FIONREAD, tcp(7)); 0 when that cannot be known."""
    sock = _socket_of(stream)
    if sock is None:
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(answer, sys.byteorder, signed=True)


def describe_failure(exc: BaseException) -> str:
    """A short text for a connection failure, for logs and error reasons.

    trio wraps TLS errors in BrokenResourceError; the cause says what failed
    (certificate verification, an alert from the node).
    """
    cause = exc.__cause__ or exc
    return str(cause) or type(cause).__name__
