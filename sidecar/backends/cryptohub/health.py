"""The deep health check of each CryptoHub node.

GetHealthStatus reports every external key manager with a ``healthStatus``
of ACTIVE, DEGRADED or UNAVAILABLE (spec, GetHealthStatus,
ekmFleetDetails). A probe of one node asks:

1. NODE: is it there, and what is it (model, version, node id)?
2. GCEN then GCDE of a fixed test plaintext under the health key (the spec
   says a health check SHOULD use a test key, never a customer's), and do
   the bytes come back equal?

and grades the answer:

    UNAVAILABLE  could not connect, the connection broke, or NODE got no
                 answer within ``health_timeout_s``
    DEGRADED     NODE was answered but a step failed (error reply, wrong
                 plaintext, no crypto answer in time), or the whole probe
                 took longer than ``health_slow_s``
    ACTIVE       everything answered, correctly, in time

The probe goes to the node directly, ignoring whether routing has marked it
down, so a recovered node is seen; a failure it meets still marks the node
down, and its first reply marks it up, like any request. The probe does no
caching: a background health checker calls it and keeps the result (KMS
accepts a result up to a minute old, spec, GetHealthStatus, KMS
Considerations).
"""

from __future__ import annotations

import hmac
from typing import Final

import trio

from sidecar.backends.base import NodeState, NodeStatus
from sidecar.backends.cryptohub.errors import NodeFailure, raise_for_result
from sidecar.backends.cryptohub.node import Node
from sidecar.backends.cryptohub.protocol import (
    NO_FIELDS,
    Fields,
    NodeIdentity,
    decrypt_fields,
    encrypt_fields,
    parse_decryption,
    parse_encryption,
    parse_identity,
)
from sidecar.xks.errors import XksError
from simulator.hostproto.codec import CodecError, Command, Frame

# Fixed and harmless: the probe proves the round trip, not any secret.
_TEST_PLAINTEXT: Final = b"CryptoHub XKS sidecar health check"
_TEST_AAD: Final = b"xks-health"


class _Probe:
    """What one probe of one node found out, step by step."""

    def __init__(self) -> None:
        self.identity: NodeIdentity | None = None
        self.answered = False  # NODE got a reply, even an error reply
        self.unreachable: str | None = None
        self.problem: str | None = None
        self.finished = False

    async def run(self, node: Node, key_id: str) -> None:
        try:
            reply = await node.request(Command.NODE, NO_FIELDS)
            self.answered = True
            self.identity = parse_identity(raise_for_result(reply))

            if not await _round_trip(node, key_id):
                self.problem = "the test plaintext did not decrypt to itself"
                return
            self.finished = True
        except NodeFailure as exc:
            self.unreachable = str(exc)
        except XksError as exc:
            self.problem = exc.reason or exc.message
        except CodecError as exc:
            self.problem = f"malformed reply: {exc.message}"

    def grade(self, latency_s: float, slow_s: float) -> tuple[NodeState, str]:
        if self.unreachable is not None:
            return NodeState.UNAVAILABLE, self.unreachable
        if not self.answered:
            return NodeState.UNAVAILABLE, "no answer to NODE in time"
        if self.problem is not None:
            return NodeState.DEGRADED, self.problem
        if not self.finished:
            return NodeState.DEGRADED, "no answer to the crypto check in time"
        if latency_s > slow_s:
            return NodeState.DEGRADED, f"slow: {latency_s * 1000:.0f} ms"
        return NodeState.ACTIVE, ""


async def _ask(node: Node, command: str, fields: Fields) -> Frame:
    return raise_for_result(await node.request(command, fields))


async def _round_trip(node: Node, key_id: str) -> bool:
    """GCEN then GCDE of the test plaintext; True if it came back equal."""
    fields = encrypt_fields(key_id, _TEST_PLAINTEXT, _TEST_AAD)
    sealed = parse_encryption(await _ask(node, Command.GCEN, fields))
    fields = decrypt_fields(key_id, *sealed, _TEST_AAD)
    opened = parse_decryption(await _ask(node, Command.GCDE, fields))
    return hmac.compare_digest(opened, _TEST_PLAINTEXT)


async def probe_node(
    node: Node, key_id: str, timeout_s: float, slow_s: float
) -> NodeStatus:
    """Probe ``node`` with the health key ``key_id``; never raises."""
    probe = _Probe()
    started = trio.current_time()
    with trio.move_on_after(timeout_s):
        await probe.run(node, key_id)
    latency = trio.current_time() - started

    state, detail = probe.grade(latency, slow_s)
    identity = probe.identity
    return NodeStatus(
        name=node.name,
        state=state,
        node_id=identity.node_id if identity else None,
        model=identity.model if identity else None,
        version=identity.version if identity else None,
        latency_s=latency,
        detail=detail,
    )


async def probe_nodes(
    nodes: tuple[Node, ...], key_id: str, timeout_s: float, slow_s: float
) -> list[NodeStatus]:
    """Probe every node at once; the results in the nodes' order."""
    results: dict[str, NodeStatus] = {}

    async def probe_into(node: Node) -> None:
        results[node.name] = await probe_node(node, key_id, timeout_s, slow_s)

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(probe_into, node)
    return [results[node.name] for node in nodes]
