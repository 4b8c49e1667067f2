"""The TLS stream's transport: a connected socket, with fewer scheduler trips.

``trio.SocketStream`` yields to the scheduler after every send and receive,
even one that did not block: that is Trio's rule that every async call is a
checkpoint. A round trip through the scheduler costs about 7 us of CPU on the
2-core target, and a request makes at least two socket calls here, plus two
on the HSM link (docs/performance.md). This transport waits only when the
socket would block, and otherwise yields every ``_YIELD_EVERY`` calls, so a
client that keeps its socket full (pipelining, say) still cannot keep the
other connections from running. Cancellation is looked at before every call,
as Trio does, and a cancelled call consumed or sent nothing.

It owns the socket: ``take`` detaches it from the ``trio.SocketStream`` the
listener accepted, whose ``aclose`` is then a no-op.
"""

from __future__ import annotations

import socket
from typing import Final

import trio

_RECEIVE_BYTES: Final = 64 * 1024
# Calls that did not block between two yields to the scheduler. Chosen, not
# measured: a request makes about four, so a busy connection yields about
# once per four requests.
_YIELD_EVERY: Final = 16


class SocketTransport(trio.abc.Stream):
    """A ``trio.abc.Stream`` over a connected non-blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._calls = 0  # calls that did not block since the last yield

    @classmethod
    def take(cls, tcp: trio.SocketStream) -> SocketTransport:
        """The transport over ``tcp``'s socket, which ``tcp`` gives up."""
        return cls(socket.socket(fileno=tcp.socket.detach()))

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            self._check_open()
            try:
                data = self.socket.recv(max_bytes or _RECEIVE_BYTES)
            except BlockingIOError:
                self._calls = 0
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket: {exc}") from exc
            await self._yield_now_and_then()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        remaining = memoryview(data)
        while remaining:
            self._check_open()
            try:
                sent = self.socket.send(remaining)
            except BlockingIOError:
                self._calls = 0
                await trio.lowlevel.wait_writable(self.socket)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket: {exc}") from exc
            remaining = remaining[sent:]
        await self._yield_now_and_then()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close the socket at once (no await, so even when cancelled)."""
        if self.socket.fileno() != -1:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    async def _yield_now_and_then(self) -> None:
        # Shielded: the call has done its work, and cancelling it now would
        # lose the bytes it received or hide that it sent them.
        self._calls += 1
        if self._calls >= _YIELD_EVERY:
            self._calls = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _check_open(self) -> None:
        if self.socket.fileno() == -1:
            raise trio.ClosedResourceError("the socket is closed")
