"""One mutual-TLS connection to a node, carrying many requests at once.

The host protocol lets a client pipeline (docs/host-protocol.md,
"Pipelining"): requests go out without waiting, each tagged with an ``ID``,
and replies come back in any order carrying their request's ``ID``. Here:

* ``request`` may be called by any number of tasks at once. It tags the frame
  with the next ID from this connection's counter, queues its bytes for the
  writer and waits for the reply with that ID, or for its deadline
  (``deadlines``: no cancel scope per request).
* The writer task is the only one that sends, so frames never interleave. It
  writes whatever has queued up meanwhile as one write: fewer TLS records
  and system calls under load. A frame whose request already gave up is not
  sent at all.
* The reader task decodes replies and hands each to the waiting request.

Why a writer task rather than a lock around ``send_all``: a request's
deadline may cancel it at any moment, and a TLS stream cancelled in the middle
of a write is broken for good (``trio.SSLStream``). No request ever cancels
the writer, so a timeout costs one request, never the connection.

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
from collections.abc import Callable
from typing import Final

import trio

from sidecar.backends.cryptohub.deadlines import DeadlineReaper
from sidecar.backends.cryptohub.errors import ConnectionLost, DeadlinePassed
from sidecar.backends.cryptohub.protocol import Fields
from simulator.hostproto.codec import (
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameError,
    Tag,
    encode_frame,
)

log = logging.getLogger("sidecar.backends.cryptohub")

Reply = Frame | FrameError
# (connection, why it ended, whether requests were waiting on it)
ClosedCallback = Callable[["HostConnection", str, bool], None]

# One read's worth; a whole default-size frame fits. Chosen, not measured.
_RECEIVE_BYTES: Final = 65536
_ID: Final = Tag.ID.value
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class _Waiter:
    """One request's place in line for its reply, or for its deadline."""

    __slots__ = ("done", "expired", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: Reply | None = None
        self.expired = False

    def expire(self) -> None:
        if not self.done.is_set():
            self.expired = True
            self.done.set()


class HostConnection:
    """A TLS stream to one node, shared by every request sent over it."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        node_name: str,
        max_frame_bytes: int,
        on_closed: ClosedCallback,
        deadlines: DeadlineReaper,
    ) -> None:
        self._stream = stream
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
        self._outbox_filled = trio.Event()
        self._taken = 0  # frames the writer has taken (sent, or skipped)
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
        self, command: str, fields: Fields, deadline: float = math.inf
    ) -> Reply:
        """Send one request and wait for its reply.

        Raises DeadlinePassed at ``deadline`` (Trio time; see ``deadlines``)
        and ConnectionLost if the connection ends first. The caller's cancel
        scope bounds it too.
        """
        if self._ended is not None:
            raise ConnectionLost(f"node {self._node_name}: {self._ended}")
        self._last_id += 1
        correlation_id = format(self._last_id, "x")
        data = encode_frame(Frame(command, ((_ID, correlation_id), *fields)))

        waiter = _Waiter()
        self._waiters[correlation_id] = waiter
        if deadline != math.inf:
            self._deadlines.watch(deadline, waiter)
        try:
            self._outbox.append((correlation_id, data))
            self._outbox_filled.set()
            await waiter.done.wait()
        finally:
            self._waiters.pop(correlation_id, None)

        if waiter.reply is not None:
            return waiter.reply
        if waiter.expired:
            raise DeadlinePassed(f"node {self._node_name}: no reply in time")
        raise ConnectionLost(f"node {self._node_name}: {self._ended}")

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
        correlation_id = reply.correlation_id
        waiter = self._waiters.pop(correlation_id, None) if correlation_id else None
        if waiter is not None:
            waiter.reply = reply
            waiter.done.set()
        elif correlation_id is not None:
            # Its request timed out or was cancelled: expected, and harmless.
            log.debug(
                "late reply discarded node=%s id=%s", self._node_name, correlation_id
            )
        else:
            # Every request we send carries an ID; this reply cannot be matched
            # and its request will time out.
            log.warning("reply without ID discarded node=%s", self._node_name)

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._outbox:
                    self._outbox_filled = trio.Event()
                    await self._outbox_filled.wait()
                batch = self._take_outbox()
                if batch:
                    await self._stream.send_all(batch)
        except _GONE as exc:
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
            waiter.done.set()  # no reply: the request raises ConnectionLost
        self._waiters.clear()
        self._on_closed(self, reason, lost_requests)


def _unread_bytes(stream: trio.abc.Stream) -> int:
    """Bytes the kernel holds for us on ``stream``'s socket, not yet read
    (FIONREAD, tcp(7)); 0 when that cannot be known."""
    transport = getattr(stream, "transport_stream", stream)
    sock = getattr(transport, "socket", None)
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
