"""The HSM's admin console as the tests use it: the one backend-specific seam.

Tests that change keys or inject faults call ``needs_console(stack)`` first;
the stack's ``KeyAdmin`` (``key_admin``, picked by the harness for the
backend) carries the commands. Every other test uses only the HTTP API, TLS
and the logs.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.stack import Stack


class Console:
    """Key management through the stack's admin console (``Stack.key_admin``),
    and fault injection through the simulator's.

    The key methods work on every backend: the simulator's SSH console and
    the PKCS#11 admin tool take the same ``keys`` commands. Faults exist
    only on the simulator; tests that inject them use ``simulator_stack``.
    """

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    async def run(self, command: str) -> str:
        status, out, err = await self._stack.console(command)
        assert status == 0, f"console {command!r}: {status} {err}"
        return out

    async def create_key(self, usages: str = "encrypt,decrypt") -> str:
        """A fresh key only this test uses; returns its external key id."""
        label = f"e2e-{uuid.uuid4().hex[:12]}"
        await self.run(f"keys create {label} --usages {usages}")
        return label

    async def destroy_key(self, key_id: str) -> None:
        await self.run(f"keys destroy {key_id} --yes")

    async def disable_key(self, key_id: str) -> None:
        await self.run(f"keys disable {key_id}")

    async def enable_key(self, key_id: str) -> None:
        await self.run(f"keys enable {key_id}")

    async def rotate_key(self, key_id: str) -> None:
        """A new key version becomes current; older ones still decrypt."""
        await self.run(f"keys rotate {key_id}")

    async def set_usages(self, key_id: str, usages: str) -> None:
        """``usages``: comma-separated encrypt, decrypt, wrap, unwrap, or none."""
        await self.run(f"keys usages {key_id} {usages}")

    async def latency(self, milliseconds: int) -> None:
        await self._fault(f"faults latency {milliseconds}")

    async def outage(self, on: bool) -> None:
        await self._fault(f"faults outage {'on' if on else 'off'}")

    async def clear_faults(self) -> None:
        await self._fault("faults clear")

    async def _fault(self, command: str) -> None:
        if not self._stack.injects_faults:
            pytest.fail(
                f"backend {self._stack.backend!r} cannot inject faults; only the"
                " simulator can: ask for the simulator_stack fixture"
            )
        await self.run(command)


def needs_console(stack: Stack) -> Console:
    """Tests calling this change keys (any backend) or inject faults
    (the simulator only) through the stack's admin console."""
    return Console(stack)
