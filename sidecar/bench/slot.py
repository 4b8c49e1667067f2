"""A connection slot: one request at a time, reconnecting when it must.

A run holds a fixed number of slots; each keeps one keep-alive connection
and opens a new one when the last failed, timed out or was closed by the
server. A reconnect happens inside the request that needs it, so its TCP
and TLS handshake count in that request's latency, as they would for KMS.
"""

from __future__ import annotations

import math

import trio

from sidecar.bench.connection import HttpConnection, Response, Target, TransportError
from sidecar.bench.outcome import GAVE_UP, Kind, Outcome, classify
from sidecar.bench.signer import SigV4Signer
from sidecar.bench.wire import Prepared, render


class Slot:
    """Sends prepared requests over its own connection, one at a time."""

    def __init__(self, target: Target, signer: SigV4Signer) -> None:
        self._target = target
        self._signer = signer
        self._connection: HttpConnection | None = None
        self.connections_opened = 0

    async def connect(self) -> None:
        """Open the connection now (before a run), or raise TransportError."""
        await self._connected()

    async def send(
        self, prepared: Prepared, give_up_at: float = math.inf
    ) -> tuple[Outcome, Response | None]:
        """Send and classify; stop waiting at ``give_up_at`` (trio time).

        Returns GAVE_UP when it gave up (the connection is then closed, since
        a late response would arrive on it), TRANSPORT when the connection
        failed, else the classified response.
        """
        response: Response | None = None
        with trio.move_on_at(give_up_at):
            try:
                connection = await self._connected()
                response = await connection.exchange(render(prepared, self._signer))
            except TransportError as exc:
                await self.aclose()
                return Outcome(Kind.TRANSPORT, exc.reason), None
        if response is None:
            await self.aclose()
            return GAVE_UP, None
        if not connection.usable:
            await self.aclose()  # the server asked to close; reopen next time
        return classify(response.status, response.body, prepared.body), response

    async def _connected(self) -> HttpConnection:
        if self._connection is None:
            self._connection = await HttpConnection.open(self._target)
            self.connections_opened += 1
        return self._connection

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()
