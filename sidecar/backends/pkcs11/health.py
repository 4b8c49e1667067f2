"""The deep health check of the PKCS#11 token, in the CryptoHub backend's shape.

GetHealthStatus reports each external key manager as ACTIVE, DEGRADED or
UNAVAILABLE (spec, GetHealthStatus, ekmFleetDetails). A PKCS#11 backend has
one: its token. A probe, in one worker-thread call on a pooled session
(so it also exercises, and triggers, the pool's recovery):

1. C_GetTokenInfo: what is it (serial number, model, firmware)?
2. encrypt then decrypt a fixed test text under the health key (a test key,
   never a customer's, as the spec asks), and compare.

Grades, as ``sidecar.backends.cryptohub.health`` grades a node:

    UNAVAILABLE  no session could be had, or no token information in time
    DEGRADED     the token answered but the crypto check failed or did not
                 finish in time, or the whole probe was slower than
                 ``health_slow_s``
    ACTIVE       everything answered, correctly, in time

``NodeStatus`` and ``NodeState`` are the CryptoHub backend's own types, so
the health module treats both backends alike. ``name`` is the token as
configured (label or serial), ``node_id`` its serial number, ``model`` its
manufacturer and model, ``version`` its firmware version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.backends.base import NodeState, NodeStatus
from sidecar.backends.pkcs11 import operations
from sidecar.backends.pkcs11.operations import KeyLookup
from sidecar.backends.pkcs11.pool import Lease
from sidecar.backends.pkcs11.settings import IvSource

__all__ = ["NodeState", "NodeStatus", "ProbeRecord", "TokenIdentity", "run_probe"]


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    serial: str
    model: str
    firmware: str


def identify(token: Any) -> TokenIdentity:
    """What C_GetTokenInfo says (python-pkcs11 Token), as printable text."""
    serial = token.serial
    if isinstance(serial, bytes):
        serial = serial.decode("ascii", "replace")
    major, minor = token.firmware_version
    model = f"{token.manufacturer_id} {token.model}".strip()
    return TokenIdentity(str(serial).strip(), model, f"{major}.{minor}")


class ProbeRecord:
    """What one probe found out, step by step; filled in by the worker thread.

    The caller may stop waiting before the thread is done (a thread cannot be
    cancelled); it then grades whatever the record holds at that moment.
    """

    def __init__(self) -> None:
        self.identity: TokenIdentity | None = None
        self.round_trip_ok: bool | None = None
        self.problem: str | None = None

    def grade(self, latency_s: float, slow_s: float) -> tuple[NodeState, str]:
        if self.identity is None:
            return NodeState.UNAVAILABLE, self.problem or "no token information in time"
        if self.problem is not None:
            return NodeState.DEGRADED, self.problem
        if self.round_trip_ok is None:
            return NodeState.DEGRADED, "no answer to the crypto check in time"
        if not self.round_trip_ok:
            return NodeState.DEGRADED, "the test plaintext did not decrypt to itself"
        if latency_s > slow_s:
            return NodeState.DEGRADED, f"slow: {latency_s * 1000:.0f} ms"
        return NodeState.ACTIVE, ""

    def status(self, name: str, latency_s: float, slow_s: float) -> NodeStatus:
        state, detail = self.grade(latency_s, slow_s)
        identity = self.identity
        return NodeStatus(
            name=name,
            state=state,
            node_id=identity.serial if identity else None,
            model=identity.model if identity else None,
            version=identity.firmware if identity else None,
            latency_s=latency_s,
            detail=detail,
        )


def run_probe(
    lease: Lease,
    lookup: KeyLookup,
    key_id: str,
    source: IvSource,
    record: ProbeRecord,
) -> None:
    """Steps 1 and 2 above, writing each result into ``record``."""
    record.identity = identify(lease.token_info())
    record.round_trip_ok = operations.round_trip(lease, lookup, key_id, source)
