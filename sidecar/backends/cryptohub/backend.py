"""The KeyManager that speaks the host protocol to CryptoHub nodes.

Each call is one host-protocol request (``describe_key`` usually none, see
``cache.py``), bounded by ``request_timeout_s``: KMS gives the whole XKS
request 250 ms (spec, GetHealthStatus, KMS Considerations), and the default
150 ms leaves the rest for TLS, HTTP and our own work. Past the deadline the
caller gets DependencyTimeoutException; the connection stays in use, and the
reply, if it ever comes, is discarded by its ID.

Failover, kept simple on purpose: a request goes to the first node, in the
configured order, that is not marked down. If that node cannot carry it
(connect failure, or the connection ended before the reply), the node is
marked down (``node.py``) and the request is tried once more, on the next
node not marked down, within what is left of the same deadline. Retrying is
safe for every command here: KINF and GCDE have no effects, and a GCEN whose
reply was lost only costs an extra encryption the caller never sees. A reply
with an error code is an answer, never retried; it is mapped to an XKS error
(``errors.py``). With every node down, the call fails at once with
InternalException rather than waiting out its deadline.

Library and protocol errors become XKS errors here, at the boundary, with
``raise ... from``; no message carries key material, plaintext or AAD.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import trio

from sidecar.audit import note_hsm_node
from sidecar.backends.base import GcmResult, KeyDescription, NodeStatus
from sidecar.backends.cryptohub.deadlines import DeadlineReaper
from sidecar.backends.cryptohub.errors import (
    DeadlinePassed,
    NodeFailure,
    raise_for_result,
)
from sidecar.backends.cryptohub.health import probe_nodes
from sidecar.backends.cryptohub.node import Node
from sidecar.backends.cryptohub.protocol import (
    IV_BYTES,
    TAG_BYTES,
    Fields,
    decrypt_fields,
    encrypt_fields,
    key_info_fields,
    parse_decryption,
    parse_encryption,
    parse_key_info,
)
from sidecar.backends.cryptohub.settings import CryptoHubSettings
from sidecar.backends.describe_cache import DescribeCache
from sidecar.xks.errors import (
    DependencyTimeoutException,
    InternalException,
    InvalidCiphertextException,
)
from simulator.hostproto.codec import CodecError, Command, Frame

T = TypeVar("T")

# The first node, and one more (spec of this backend: "retry once").
_ATTEMPTS: Final = 2
# Plain strings, not the enum members: see protocol.py's _KV.
_KINF: Final = Command.KINF.value
_GCEN: Final = Command.GCEN.value
_GCDE: Final = Command.GCDE.value


class CryptoHubBackend:
    """A ``KeyManager`` over one or more CryptoHub nodes.

    Background tasks (connection readers and writers, connection opening, the
    deadline reaper) run in ``nursery``; ``aclose`` ends them.
    ``open_cryptohub_backend`` pairs the two for callers without a nursery of
    their own.
    """

    def __init__(self, settings: CryptoHubSettings, nursery: trio.Nursery) -> None:
        self._settings = settings
        self._deadlines = DeadlineReaper()
        self._reaper_scope = trio.CancelScope()
        nursery.start_soon(self._run_reaper)
        self._nodes = tuple(
            Node(node, settings, nursery, self._deadlines) for node in settings.nodes
        )
        self._descriptions = DescribeCache(settings.describe_cache_ttl_s)
        self._timeout = settings.request_timeout_s
        self._closed = False

    async def _run_reaper(self) -> None:
        with self._reaper_scope:
            await self._deadlines.run()

    async def describe_key(self, key_id: str) -> KeyDescription:
        return await self._descriptions.get(key_id, self._describe_uncached)

    def _describe_uncached(self, key_id: str) -> Awaitable[KeyDescription]:
        return self._call(_KINF, _fields(key_info_fields, key_id), parse_key_info)

    # Encrypt and decrypt are plain functions handing back ``_call``'s
    # coroutine: one coroutine frame fewer per HSM command, which every XKS
    # Encrypt pays twice (its CDIV check decrypts).

    def encrypt(
        self, key_id: str, plaintext: bytes, hsm_aad: bytes
    ) -> Awaitable[GcmResult]:
        fields = _fields(encrypt_fields, key_id, plaintext, hsm_aad)
        return self._call(_GCEN, fields, parse_encryption)

    def decrypt(
        self,
        key_id: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        hsm_aad: bytes,
    ) -> Awaitable[bytes]:
        # XKS allows 16-byte IVs in a Decrypt request; the node only ever made
        # 12-byte ones, so anything else cannot be ours (base.py's table).
        if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
            raise InvalidCiphertextException(reason="IV or tag of the wrong length")
        fields = _fields(
            decrypt_fields, key_id, key_version, iv, ciphertext, tag, hsm_aad
        )
        return self._call(_GCDE, fields, parse_decryption)

    async def probe(self, health_key_id: str) -> list[NodeStatus]:
        """Deep-check every node with the health key (see ``health.py``)."""
        timeout, slow = self._settings.health_timeout_s, self._settings.health_slow_s
        return await probe_nodes(self._nodes, health_key_id, timeout, slow)

    def in_flight(self) -> int:
        """Requests sent and awaiting a reply, over all nodes (for metrics)."""
        return sum(node.in_flight for node in self._nodes)

    async def aclose(self) -> None:
        """End every connection; calls after this raise InternalException."""
        self._closed = True
        for node in self._nodes:
            node.close()
        self._reaper_scope.cancel()
        await trio.lowlevel.checkpoint()

    async def _call(
        self, command: str, fields: Fields | CodecError, parse: Callable[[Frame], T]
    ) -> T:
        """Send ``fields`` to the first node able to carry them, ``parse``
        the reply. ``fields`` is the CodecError building them raised when the
        protocol cannot carry an argument (a key id, say): InternalException,
        raised here, where every other failure of the call is converted."""
        if self._closed:
            raise InternalException(reason="the CryptoHub backend is closed")
        if isinstance(fields, CodecError):
            raise InternalException(
                reason=f"CryptoHub {command}: {fields.message}"
            ) from fields
        now = trio.current_time()
        deadline = now + self._timeout
        failure: NodeFailure | None = None
        attempts = 0
        try:
            for node in self._nodes:
                if node.is_down(now):
                    continue
                note_hsm_node(node.name)  # the audit line names the node tried last
                try:
                    reply = await node.request(command, fields, deadline)
                except NodeFailure as exc:
                    failure = exc
                    attempts += 1
                    if attempts == _ATTEMPTS:
                        break
                    # The next node is judged at the time of the retry.
                    now = trio.current_time()
                    continue
                return parse(raise_for_result(reply))
        except DeadlinePassed:
            raise DependencyTimeoutException(
                reason=f"CryptoHub {command}: no reply within "
                f"{self._timeout * 1000:g} ms"
            ) from None
        except CodecError as exc:
            raise InternalException(
                reason=f"CryptoHub {command}: {exc.message}"
            ) from exc
        reason = str(failure) if failure else "every CryptoHub node is marked down"
        raise InternalException(reason=f"CryptoHub {command}: {reason}") from failure


def _fields(build: Callable[..., Fields], *args: Any) -> Fields | CodecError:
    """``build(*args)``, or the CodecError it raised, for ``_call`` to convert."""
    try:
        return build(*args)
    except CodecError as exc:
        return exc


@asynccontextmanager
async def open_cryptohub_backend(
    settings: CryptoHubSettings,
) -> AsyncIterator[CryptoHubBackend]:
    """A backend with its own nursery, closed when the block ends."""
    async with trio.open_nursery() as nursery:
        backend = CryptoHubBackend(settings, nursery)
        try:
            yield backend
        finally:
            await backend.aclose()
