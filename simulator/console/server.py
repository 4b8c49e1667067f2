"""The SSH listener of the admin console, hosted on the simulator's Trio loop.

asyncssh runs on asyncio and the simulator on Trio. trio-asyncio runs an
asyncio loop inside the Trio run, in the same thread, so console sessions call
the key store, faults and stats directly, exactly as the host-protocol server
does, with no locks and no cross-thread hand-off. (The alternative, asyncssh on
its own asyncio thread calling back through ``trio.from_thread``, would work
too, but makes every command a thread hop and every object shared state.)

Authentication is public key only, for the one user ``admin``, against the
``authorized_keys`` file read at start-up (RFC 4252 section 7). Passwords,
keyboard-interactive, host-based and GSSAPI are switched off, so the server
never offers them; forwarding, SFTP and SCP are off too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncssh
import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from simulator.console.context import ConsoleContext, ConsoleSettings
from simulator.console.session import run_session

log = logging.getLogger("simulator.console")

ADMIN_USER = "admin"


class ConsoleSetupError(Exception):
    """The console cannot start: a key file is missing or malformed."""


async def serve_console(
    settings: ConsoleSettings,
    ctx: ConsoleContext,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin console until cancelled; ``started`` gets the bound port."""
    host_key = _read_host_key(settings.host_key)
    authorized = _read_authorized_keys(settings.authorized_keys)
    async with trio_asyncio.open_loop():
        listener = _Listener(ctx, authorized)
        port: int = await aio_as_trio(listener.start)(settings, host_key)
        try:
            log.info("console listening address=%s port=%d", settings.listen, port)
            task_status.started(port)
            await trio.sleep_forever()
        finally:
            # Close every session before the asyncio loop goes away, or their
            # transports would be left open and unclosed.
            with trio.CancelScope(shield=True):
                await aio_as_trio(listener.aclose)()
            log.info("console stopped port=%d", port)


@dataclass
class _Listener:
    """The asyncssh acceptor plus the connections it has open."""

    ctx: ConsoleContext
    authorized: asyncssh.SSHAuthorizedKeys
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    acceptor: asyncssh.SSHAcceptor | None = None

    async def start(self, settings: ConsoleSettings, host_key: asyncssh.SSHKey) -> int:
        self.acceptor = await asyncssh.create_server(
            partial(_AdminServer, self.connections, self.authorized),
            settings.listen,
            settings.port,
            server_host_keys=[host_key],
            process_factory=partial(run_session, ctx=self.ctx),
            encoding="utf-8",
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_host=None,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            line_editor=True,
        )
        return self.acceptor.get_port()

    async def aclose(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        open_now = list(self.connections)
        for conn in open_now:
            conn.close()
        for conn in open_now:
            await conn.wait_closed()


class _AdminServer(asyncssh.SSHServer):
    """Per-connection policy: who may log in, and a log line for each login."""

    def __init__(
        self,
        connections: set[asyncssh.SSHServerConnection],
        authorized: asyncssh.SSHAuthorizedKeys,
    ) -> None:
        self._connections = connections
        self._authorized = authorized
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = "?"
        self._user: str | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._connections.add(conn)
        host, port, *_ = conn.get_extra_info("peername", ("?", 0))
        self._peer = f"{host}:{port}"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._connections.discard(self._conn)
        if self._user is None:
            log.info("console connection closed before login peer=%s", self._peer)

    def begin_auth(self, username: str) -> bool:
        # A client may change user name between attempts (RFC 4252 section 5),
        # so the keys are set, or taken away, on every call.
        assert self._conn is not None
        allowed = username == ADMIN_USER
        self._conn.set_authorized_keys(self._authorized if allowed else None)
        if not allowed:
            log.warning("console login refused user=%r peer=%s", username, self._peer)
        return True  # authentication is always required

    def auth_completed(self) -> None:
        assert self._conn is not None
        self._user = str(self._conn.get_extra_info("username"))
        log.info("console login user=%s peer=%s", self._user, self._peer)


def _read_host_key(path: Path) -> asyncssh.SSHKey:
    # Read once at start-up, before the loop serves anyone, so blocking here
    # delays nothing; an unusable file stops the start with its name.
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise ConsoleSetupError(f"{path}: cannot read the SSH host key: {exc}") from exc


def _read_authorized_keys(path: Path) -> asyncssh.SSHAuthorizedKeys:
    try:
        return asyncssh.read_authorized_keys(str(path))
    except (OSError, ValueError, asyncssh.KeyImportError) as exc:
        raise ConsoleSetupError(f"{path}: cannot read authorized keys: {exc}") from exc
