"""One CryptoHub node: a small pool of connections, and whether it is down.

Pool. Up to ``pool_size`` connections, opened lazily: the first request to a
node waits for the first connection; after that a request goes to the first
open connection with fewer than ``pipeline_depth`` requests in flight. Only
when every open one is that deep is another opened, in the background, for
the requests after it (meanwhile, and once the pool is full, they go to the
least busy). Connections that end are dropped from the pool; the next
request opens a new one. So a node holds one connection until its pipeline
runs deep, then up to ``pool_size``; traffic stays concentrated on the first
connection, where frames and replies batch best (settings.py).

Opening runs as its own task, bounded by ``connect_timeout_s``, apart from
any request: a request's deadline never cancels a half-done handshake that
other requests are waiting on, and a node that swallows connection attempts
is found out after ``connect_timeout_s`` and marked down, rather than eating
every request's whole deadline. Requests wait for the opening within their
own deadline.

Down. A node is marked down when a connection cannot be opened (TCP refused,
TLS handshake failed, connect timed out) or when a connection ends with
requests waiting on it, or when several requests in a row have timed out
while nothing at all came back on their connection (``_SILENCE_LIMIT``: a
hung node accepts requests and never answers; that connection is abandoned
too). Slow is not hung: a node whose replies still come, late, stays up, and
so does one whose replies wait unread because this process is overloaded.
A connection that ends idle (the node's idle timeout) is not a failure.
A down node is skipped by the backend's routing for a backoff that starts at
``node_backoff_s`` and doubles with each consecutive failure up to
``node_backoff_max_s``; once it has passed, the next request tries the node
again, and its first reply marks the node up.
The health probe ignores the mark and always tries.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import trio

from sidecar.backends.cryptohub.connection import (
    HostConnection,
    Reply,
    WokenRequests,
    describe_failure,
)
from sidecar.backends.cryptohub.deadlines import DeadlineReaper
from sidecar.backends.cryptohub.errors import ConnectFailed, DeadlinePassed
from sidecar.backends.cryptohub.protocol import Fields
from sidecar.backends.cryptohub.settings import CryptoHubSettings, NodeSettings
from sidecar.backends.cryptohub.tls import client_tls_context, connect_tls

log = logging.getLogger("sidecar.backends.cryptohub")

# Doubling stops mattering long before this; it keeps 2**n a small number.
_MAX_DOUBLINGS: Final = 16
# Requests in a row that ended without a reply, and without any other reply
# arriving on their connection while they waited, before the node counts as
# hung. One is a slow moment; several in a row is a node that stopped
# answering. Chosen, not measured. A stall of our own process (overload) does
# not count: replies waiting unread in the socket, or requests not yet sent,
# show that the silence is ours.
_SILENCE_LIMIT: Final = 3


class Node:
    """A node's connection pool and up/down state."""

    def __init__(
        self,
        settings: NodeSettings,
        config: CryptoHubSettings,
        nursery: trio.Nursery,
        deadlines: DeadlineReaper,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._tls = client_tls_context(settings)  # reads the files once, here
        self._config = config
        self._nursery = nursery
        self._deadlines = deadlines
        self._connections: list[HostConnection] = []
        self._woken = WokenRequests()  # shared by the connections
        self._opening: trio.Event | None = None
        self._open_scope: trio.CancelScope | None = None
        self._last_failure = "no connection attempted yet"
        self._failures = 0  # consecutive, since the node last answered
        self._unanswered = 0  # requests in a row that met only silence
        self._down_until = -math.inf
        self._closed = False

    def is_down(self, now: float) -> bool:
        """True while the node's backoff after a failure lasts."""
        return now < self._down_until

    @property
    def in_flight(self) -> int:
        return sum(connection.in_flight for connection in self._connections)

    async def request(
        self, command: str, fields: Fields, deadline: float = math.inf
    ) -> Reply:
        """One request over the pool; ConnectFailed or ConnectionLost if the
        node cannot carry it, DeadlinePassed at ``deadline`` (Trio time).
        The caller's cancel scope bounds it too."""
        connection = None if self._closed else self._open_connection()
        if connection is None:
            connection = await self._connection(deadline)
        heard_before = connection.replies_received
        # The pool's others idle too? (HostConnection._may_send_at_once)
        alone = len(self._connections) == 1 or self.in_flight == 0
        try:
            reply = await connection.request(command, fields, deadline, alone)
        except (DeadlinePassed, trio.Cancelled):
            if connection.heard_nothing_since(heard_before):
                self._note_silence(connection)
            raise
        self._unanswered = 0
        if self._failures:
            self._mark_up()
        return reply

    def close(self) -> None:
        """Stop opening connections and end the open ones."""
        self._closed = True
        if self._open_scope is not None:
            self._open_scope.cancel()
        for connection in list(self._connections):
            connection.shutdown()

    def _open_connection(self) -> HostConnection | None:
        """The connection for the next request when one is open and no more
        is needed: the first not ``pipeline_depth`` deep, or the least busy
        when the pool is full; else None, and ``_connection`` decides. A plain
        call, not a coroutine: it answers nearly every request (a coroutine
        costs about 0.5 us more)."""
        depth = self._config.pipeline_depth
        for connection in self._connections:
            if connection.in_flight < depth:
                return connection
        if len(self._connections) >= self._config.pool_size:
            return self._least_busy()
        return None

    async def _connection(self, deadline: float) -> HostConnection:
        if self._closed:
            raise ConnectFailed(f"node {self.name}: the backend is closed")
        ready = self._open_connection()
        if ready is not None:
            return ready

        opened = self._open_in_background()
        chosen = self._least_busy()  # busy, but better than waiting
        if chosen is not None:
            return chosen
        with trio.move_on_at(deadline):
            await opened.wait()
        if not opened.is_set():
            raise DeadlinePassed(f"node {self.name}: no connection in time")
        chosen = self._least_busy()
        if chosen is None:
            raise ConnectFailed(f"node {self.name}: {self._last_failure}")
        return chosen

    def _least_busy(self) -> HostConnection | None:
        best: HostConnection | None = None
        for connection in self._connections:
            if best is None or connection.in_flight < best.in_flight:
                best = connection
        return best

    def _open_in_background(self) -> trio.Event:
        """The event that fires when the (single) opening in progress ends."""
        if self._opening is None:
            self._opening = trio.Event()
            self._nursery.start_soon(self._open, self._opening)
        return self._opening

    async def _open(self, done: trio.Event) -> None:
        try:
            with trio.move_on_after(self._config.connect_timeout_s) as scope:
                self._open_scope = scope
                await self._connect()
            if scope.cancelled_caught and not self._closed:
                timeout = self._config.connect_timeout_s
                self._mark_down(f"connect timed out after {timeout:g} s")
        finally:
            self._open_scope = None
            self._opening = None
            done.set()

    async def _connect(self) -> None:
        try:
            stream = await connect_tls(self.settings, self._tls)
        except (OSError, trio.BrokenResourceError) as exc:
            self._mark_down(f"connect failed: {describe_failure(exc)}")
            return
        connection = HostConnection(
            stream,
            self.name,
            self._config.max_frame_bytes,
            self._connection_ended,
            self._deadlines,
            self._woken,
        )
        self._connections.append(connection)
        self._nursery.start_soon(connection.run)
        log.info(
            "connection opened node=%s address=%s:%d connections=%d",
            self.name,
            self.settings.host,
            self.settings.port,
            len(self._connections),
        )

    def _connection_ended(
        self, connection: HostConnection, reason: str, lost_requests: bool
    ) -> None:
        self._connections.remove(connection)
        if lost_requests:
            self._mark_down(f"{reason} (requests in flight)")
        else:
            log.info(
                "connection closed node=%s reason=%s connections=%d",
                self.name,
                reason,
                len(self._connections),
            )

    def _note_silence(self, connection: HostConnection) -> None:
        """A request on ``connection`` gave up (its deadline, mostly) and
        nothing at all came back on the connection while it waited, though
        it had been sent; enough in a row and the node counts as hung. A
        node that answers other requests meanwhile is slow, not hung, and is
        left alone; so is one whose replies sit unread because this process
        fell behind (``HostConnection.heard_nothing_since``)."""
        self._unanswered += 1
        if self._unanswered < _SILENCE_LIMIT:
            return
        self._unanswered = 0
        reason = f"{_SILENCE_LIMIT} requests in a row got no reply"
        connection.abandon(reason)
        self._mark_down(reason)

    def _mark_down(self, reason: str) -> None:
        self._failures += 1
        self._last_failure = reason
        doublings = min(self._failures - 1, _MAX_DOUBLINGS)
        backoff = min(
            self._config.node_backoff_s * 2**doublings, self._config.node_backoff_max_s
        )
        self._down_until = trio.current_time() + backoff
        log.warning(
            "node down node=%s failures=%d retry_in_s=%.2f reason=%s",
            self.name,
            self._failures,
            backoff,
            reason,
        )

    def _mark_up(self) -> None:
        log.info("node up node=%s after_failures=%d", self.name, self._failures)
        self._failures = 0
        self._down_until = -math.inf
