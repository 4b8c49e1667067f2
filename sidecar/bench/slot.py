"""A connection slot: one request at a time, reconnecting when it must.

A run holds a fixed number of slots; each keeps one keep-alive connection
and opens a new one when the last failed, timed out or was closed by the
server. A reconnect happens inside the request that needs it, so its TCP
and TLS handshake count in that request's latency, as they would for KMS.

A request's give-up time is enforced by the phase's ``GiveUpReaper``
(``giveup``), not by a cancel scope per request; a reconnect, which is rare,
keeps its own cancel scope. So ``send`` needs a running reaper:
``giveup.watching_give_up(slots)``.
"""

from __future__ import annotations

import math

import trio

from sidecar.bench.connection import HttpConnection, Response, Target, TransportError
from sidecar.bench.giveup import GiveUpReaper
from sidecar.bench.outcome import GAVE_UP, Kind, Outcome, classify
from sidecar.bench.signer import SigV4Signer
from sidecar.bench.wire import Prepared, render


class Slot:
    """Sends prepared requests over its own connection, one at a time."""

    def __init__(self, target: Target, signer: SigV4Signer) -> None:
        self._target = target
        self._signer = signer
        self._connection: HttpConnection | None = None
        self._reaper: GiveUpReaper | None = None
        self._gave_up = False
        self.give_up_at = math.inf  # while an exchange waits (for the reaper)
        self.connections_opened = 0

    async def connect(self) -> None:
        """Open the connection now (before a run), or raise TransportError."""
        await self._connected()

    def watch_by(self, reaper: GiveUpReaper | None) -> None:
        self._reaper = reaper

    async def send(
        self, prepared: Prepared, give_up_at: float = math.inf
    ) -> tuple[Outcome, Response | None]:
        """Send and classify; stop waiting at ``give_up_at`` (trio time).

        Returns GAVE_UP when it gave up (the connection is then closed, since
        a late response would arrive on it), TRANSPORT when the connection
        failed, else the classified response.
        """
        try:
            response = await self._exchange(prepared, give_up_at)
        except TransportError as exc:
            await self.aclose()
            return Outcome(Kind.TRANSPORT, exc.reason), None
        if response is None:
            await self.aclose()
            return GAVE_UP, None
        if self._connection is not None and not self._connection.usable:
            await self.aclose()  # the server asked to close; reopen next time
        return classify(response.status, response.body, prepared.body), response

    async def _exchange(self, prepared: Prepared, give_up_at: float) -> Response | None:
        """The response, or None if the give-up time came first."""
        if self._reaper is None:
            raise RuntimeError("Slot.send needs a GiveUpReaper: watching_give_up")
        connection = self._connection
        if connection is None:
            with trio.move_on_at(give_up_at):
                connection = await self._connected()
            if connection is None:
                return None
        self._gave_up = False
        self.give_up_at = give_up_at
        self._reaper.watch(give_up_at)
        try:
            response = await connection.exchange(render(prepared, self._signer))
        except (trio.ClosedResourceError, TransportError):
            # The reaper closed the socket under the exchange, or it failed
            # after the give-up time: given up either way.
            if not self._gave_up:
                raise
            return None
        finally:
            self.give_up_at = math.inf
        # Given up while the answer was being read: KMS would have, too.
        return None if self._gave_up else response

    def give_up(self) -> None:
        """Called by the reaper once the give-up time passed."""
        self.give_up_at = math.inf
        self._gave_up = True
        if self._connection is not None:
            self._connection.give_up()

    async def _connected(self) -> HttpConnection:
        if self._connection is None:
            self._connection = await HttpConnection.open(self._target)
            self.connections_opened += 1
        return self._connection

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()
