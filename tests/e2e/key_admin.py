"""The HSM operator's console, one implementation per backend.

``KeyAdmin`` is the seam: one command in (``keys rotate foo``), exit status
and output back. The simulator's SSH console and the PKCS#11 admin tool take
the same ``keys ...`` commands (docs/simulator-console.md,
docs/backend-pkcs11.md), so tests do not know which one they drive. Only the
simulator's console also takes ``faults ...``.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncssh
import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from fixtures.devstack import SoftHsmToken
from fixtures.pki import Pki

CONSOLE_TIMEOUT_S = 15.0


class KeyAdmin(Protocol):
    """The HSM operator's console: one command, e.g. ``keys rotate foo``.

    Returns (exit status, stdout, stderr). Both backends take the same
    ``keys`` commands (docs/simulator-console.md, docs/backend-pkcs11.md).
    """

    async def run(self, command: str) -> tuple[int, str, str]: ...


@dataclass
class SimulatorConsole:
    """The simulator's SSH admin console: keys, and fault injection."""

    pki: Pki
    host: str
    port: int

    async def run(self, command: str) -> tuple[int, str, str]:
        """Each call opens its own SSH connection on its own asyncio loop
        (trio-asyncio), since every test runs in a Trio run of its own."""
        with trio.fail_after(CONSOLE_TIMEOUT_S):
            async with trio_asyncio.open_loop():
                connect = aio_as_trio(asyncssh.connect)
                conn = await connect(self.host, self.port, **self._ssh_options())
                try:
                    result = await aio_as_trio(conn.run)(command)
                finally:
                    conn.close()
                    await aio_as_trio(conn.wait_closed)()
        return result.exit_status or 0, _text(result.stdout), _text(result.stderr)

    def _ssh_options(self) -> dict[str, object]:
        # Trust only the PKI's host key; ignore the user's own ssh setup.
        host_key = asyncssh.read_private_key(self.pki.ssh_host_key)
        return {
            "username": "admin",
            "client_keys": [self.pki.ssh_admin_key],
            "known_hosts": ([host_key.convert_to_public()], [], []),
            "config": None,
            "agent_path": None,
        }


@dataclass
class Pkcs11AdminTool:
    """``python -m sidecar.backends.pkcs11.admin`` on the stack's token.

    A new process per command, as an operator runs it; what it prints goes
    to the HSM-side log as well, so the leak check sees it.
    """

    token: SoftHsmToken
    log: Path

    async def run(self, command: str) -> tuple[int, str, str]:
        argv = [*self.token.tool_argv("admin"), *shlex.split(command)]
        with trio.fail_after(CONSOLE_TIMEOUT_S):
            done = await trio.run_process(
                argv,
                env={**os.environ, **self.token.env()},
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        out, err = _text(done.stdout), _text(done.stderr)
        entry = f"$ admin {command}\n{out}{err}exit status {done.returncode}\n"
        await trio.to_thread.run_sync(_append, self.log, entry)
        return done.returncode, out, err


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
