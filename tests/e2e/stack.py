"""What a running end-to-end stack is: where it listens, and how to reach it.

``Stack`` is what the ``stack`` fixture hands every test (common.md,
"Sidecar end-to-end harness contract"); ``harness.running_stack`` makes one.
Nothing here starts a process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fixtures.pki import Pki
from tests.e2e.key_admin import KeyAdmin, SimulatorConsole

REGION = "us-east-1"
HOST = "127.0.0.1"
SERVER_NAME = "localhost"  # the sidecar's certificate has SAN localhost

CRYPTOHUB, PKCS11 = "cryptohub", "pkcs11"
BACKENDS = (CRYPTOHUB, PKCS11)


@dataclass(frozen=True)
class KeystoreInfo:
    name: str
    uri_path: str
    region: str
    credentials: list[tuple[str, str]] = field(repr=False)  # (access key id, secret)


@dataclass
class Stack:
    pki: Pki
    host: str
    server_name: str
    port: int  # XKS data plane: TLS, mTLS (KMS's CN), SigV4
    ping_port: int  # plain HTTP GET /ping
    keystores: dict[str, KeystoreInfo]
    sidecar_log: Path
    # The HSM side's log: the simulator's, or (pkcs11) the output of the
    # provisioning and admin tools. The leak check reads it too.
    simulator_log: Path
    workdir: Path
    key_admin: KeyAdmin = field(repr=False)
    backend: str = CRYPTOHUB
    # (label, value) of every secret no log may hold; see ``leaks.find_leaks``.
    secrets: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    console_used: bool = False  # since the last ``faults clear``

    def remember_secret(self, label: str, value: bytes | str) -> None:
        """Have the session-end check look for ``value`` in every log."""
        raw = value.encode() if isinstance(value, str) else value
        self.secrets.append((label, raw))

    @property
    def injects_faults(self) -> bool:
        """Whether the console takes ``faults ...``: the simulator's only."""
        return isinstance(self.key_admin, SimulatorConsole)

    async def console(self, command: str) -> tuple[int, str, str]:
        """Run one command on the HSM's admin console (see ``KeyAdmin``)."""
        self.console_used = True
        return await self.key_admin.run(command)
