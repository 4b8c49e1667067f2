"""Before the timed run: open the connections and make ciphertexts to decrypt.

KMS decrypts what the proxy encrypted earlier, so a Decrypt in the mix needs
a ciphertext, IV, tag and ciphertextMetadata this proxy produced under this
key. The warm-up sends GenerateDataKey-style Encrypts as fast as the
connections allow (closed loop: nothing is measured here) and turns each
successful answer into a Decrypt body for the run. It also opens every
connection first, so TLS handshakes stay out of the measured phase, and
warms whatever the proxy caches (key metadata, HSM sessions).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import trio

from sidecar.bench.connection import TransportError
from sidecar.bench.giveup import watching_give_up
from sidecar.bench.outcome import Kind, Outcome
from sidecar.bench.payloads import Body, Caller, Operation, build_pool, decrypt_body
from sidecar.bench.slot import Slot
from sidecar.bench.wire import prepare

# Generous: the warm-up is not measured, it only has to finish.
_WARMUP_GIVE_UP_S = 5.0


@dataclass
class WarmupResult:
    connection_failures: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    failures: Counter[Outcome] = field(default_factory=Counter)
    decrypts: list[Body] = field(default_factory=list)


async def open_connections(slots: Sequence[Slot], result: WarmupResult) -> None:
    """Connect every slot at once; failures are counted, not raised."""

    async def connect(slot: Slot) -> None:
        try:
            await slot.connect()
        except TransportError as exc:
            result.connection_failures[exc.reason] += 1

    async with trio.open_nursery() as nursery:
        for slot in slots:
            nursery.start_soon(connect, slot)


async def make_ciphertexts(
    slots: Sequence[Slot], caller: Caller, host: str, count: int, result: WarmupResult
) -> None:
    """Send ``count`` Encrypts over all slots; keep a Decrypt for each ok."""
    bodies = iter(build_pool(caller, Operation.ENCRYPT, count))
    async with watching_give_up(slots), trio.open_nursery() as nursery:
        for slot in slots:
            nursery.start_soon(_encrypt_loop, slot, bodies, caller, host, result)


async def _encrypt_loop(
    slot: Slot, bodies: Iterator[Body], caller: Caller, host: str, result: WarmupResult
) -> None:
    # One iterator shared by all slots: Trio runs one task at a time, and
    # ``next`` does not yield, so each body is taken exactly once.
    for body in bodies:
        result.sent += 1
        give_up_at = trio.current_time() + _WARMUP_GIVE_UP_S
        outcome, response = await slot.send(prepare(body, host), give_up_at)
        if outcome.kind is Kind.OK and response is not None:
            result.decrypts.append(
                decrypt_body(caller, body, json.loads(response.body))
            )
        else:
            result.failures[outcome] += 1
