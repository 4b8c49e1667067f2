"""Host-protocol requests built from backend arguments, replies read back.

Sans-IO: fields in, values out, nothing sent. The connection adds the ``ID``
correlation tag; ``errors.raise_for_result`` has already checked ``ER`` by the
time a reply reaches a parser here. A reply that lacks a field or carries a
malformed one raises ``CodecError``, which the backend turns into
InternalException: the node broke the protocol, the caller did nothing wrong.

Field meanings are the host protocol's (docs/host-protocol.md, "Commands").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar.backends.base import GcmResult, KeyDescription
from simulator.hostproto.codec import CodecError, ErrorCode, Frame, Tag, b64

Fields = tuple[tuple[str, str], ...]

# The host protocol's GCDE accepts exactly these (docs/host-protocol.md, GCDE);
# GCEN always produces them.
IV_BYTES: Final = 12
TAG_BYTES: Final = 16
_ENABLED: Final = "ENABLED"
_DISABLED: Final = "DISABLED"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """What NODE reports: node id, model, version, serial number."""

    node_id: str
    model: str
    version: str
    serial: str


def key_info_fields(key_id: str) -> Fields:
    return ((Tag.KL.value, key_id),)


def encrypt_fields(key_id: str, plaintext: bytes, aad: bytes) -> Fields:
    fields: Fields = ((Tag.KL.value, key_id), (Tag.PT.value, b64(plaintext)))
    # Absent and empty AAD are the same to GCDE; omit it rather than send "".
    return (*fields, (Tag.AD.value, b64(aad))) if aad else fields


def decrypt_fields(
    key_id: str, key_version: int, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes
) -> Fields:
    fields: Fields = (
        (Tag.KL.value, key_id),
        (Tag.KV.value, str(key_version)),
        (Tag.IV.value, b64(iv)),
        (Tag.CT.value, b64(ciphertext)),
        (Tag.TG.value, b64(tag)),
    )
    return (*fields, (Tag.AD.value, b64(aad))) if aad else fields


def parse_key_info(reply: Frame) -> KeyDescription:
    """KINF's KS, KG, ST and KV as the KeyManager interface describes a key."""
    state = reply.text(Tag.ST)
    if state not in (_ENABLED, _DISABLED):
        raise CodecError(ErrorCode.INVALID_FIELD, "field ST is not a key state")
    usages = reply.text(Tag.KG)
    return KeyDescription(
        key_spec=reply.text(Tag.KS),
        usages=frozenset(usages.split(",")) if usages else frozenset(),
        enabled=state == _ENABLED,
        current_version=reply.integer(Tag.KV),
    )


def parse_encryption(reply: Frame) -> GcmResult:
    return GcmResult(
        key_version=reply.integer(Tag.KV),
        iv=reply.binary(Tag.IV),
        ciphertext=reply.binary(Tag.CT),
        tag=reply.binary(Tag.TG),
    )


def parse_decryption(reply: Frame) -> bytes:
    return reply.binary(Tag.PT)


def parse_identity(reply: Frame) -> NodeIdentity:
    return NodeIdentity(
        node_id=reply.text(Tag.NI),
        model=reply.text(Tag.MD),
        version=reply.text(Tag.VR),
        serial=reply.text(Tag.SN),
    )
