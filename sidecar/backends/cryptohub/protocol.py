"""Host-protocol requests built from backend arguments, replies read back.

Sans-IO: arguments in, bytes or values out, nothing sent. A request is built
here as its *encoded fields* (``<TAG><value>;`` each, docs/host-protocol.md,
"Framing"); the connection adds the command, the ``ID`` correlation tag and
the brackets (``request_frame``). ``errors.raise_for_result`` has already
checked ``ER`` by the time a reply reaches a parser here. A reply that lacks a
field or carries a malformed one raises ``CodecError``, which the backend
turns into InternalException: the node broke the protocol, the caller did
nothing wrong.

Why bytes rather than ``codec.Frame`` and ``codec.encode_frame``: a Frame
validates every tag and value when built, which is the codec's job for frames
of unknown origin, but here every value but one is valid by construction
(base64 text, decimal digits, the counter's hex digits). Building the request
as a Frame, validating and encoding it took 5.8 us for an Encrypt and 7.9 us
for a Decrypt (32-byte plaintext, 110-byte AAD; tight loop on the 2-core
target); the bytes built here take 1.1 and 1.8 us. The one value that comes
from outside, the external key id, is still checked by the codec itself (a
Frame is built for it) once per key id, so the rules live in one place;
``tests/backends/test_cryptohub_protocol.py`` proves the bytes equal
``encode_frame``'s for the same fields.

Field meanings are the host protocol's (docs/host-protocol.md, "Commands").
"""

from __future__ import annotations

from binascii import b2a_base64
from dataclasses import dataclass
from typing import Final

from sidecar.backends.base import GcmResult, KeyDescription
from simulator.hostproto.codec import CodecError, Command, ErrorCode, Frame, Tag

# Encoded fields, each "<TAG><value>;" (docs/host-protocol.md, "Framing").
Fields = bytes
NO_FIELDS: Final = b""

# The host protocol's GCDE accepts exactly these (docs/host-protocol.md, GCDE);
# GCEN always produces them.
IV_BYTES: Final = 12
TAG_BYTES: Final = 16
_ENABLED: Final = "ENABLED"
# The tags of the replies parsed on every Encrypt and Decrypt, as plain
# strings: reading a member off an enum class costs about 0.43 us on the
# target (Python 3.11's enum property; timeit), six such reads per Encrypt
# with ER and the command name, three per Decrypt.
_KV: Final = Tag.KV.value
_IV: Final = Tag.IV.value
_CT: Final = Tag.CT.value
_TG: Final = Tag.TG.value
_PT: Final = Tag.PT.value
_DISABLED: Final = "DISABLED"

# Checked key fields (b"KL<key id>;") by key id. Past this many distinct key
# ids the dict starts over, so ids asked for once cannot grow it without
# bound; chosen, not measured (a keystore has a handful of keys).
_KEY_FIELDS_MAX: Final = 4096
_key_fields: dict[str, bytes] = {}
# "[AO<CMD>;ID" by command, checked by the codec once per command.
_frame_heads: dict[str, bytes] = {}


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """What NODE reports: node id, model, version, serial number."""

    node_id: str
    model: str
    version: str
    serial: str


def request_frame(command: str, correlation_id: str, fields: Fields) -> bytes:
    """The wire bytes of a request: ``ID`` first, then ``fields``.

    ``correlation_id`` must be a valid ID (the connection's counter in hex).
    """
    head = _frame_heads.get(command)
    if head is None:
        head = _frame_head(command)
    return b"".join((head, correlation_id.encode(), b";", fields, b"]"))


def _frame_head(command: str) -> bytes:
    Frame(command)  # CodecError unless the codec accepts the command name
    head = f"[AO{command};{Tag.ID.value}".encode()
    _frame_heads[command] = head
    return head


def key_field(key_id: str) -> bytes:
    """The ``KL`` field for ``key_id``; CodecError if it cannot be carried
    (a value holds printable ASCII but ``;``, ``[`` and ``]``)."""
    field = _key_fields.get(key_id)
    if field is None:
        Frame(Command.KINF, ((Tag.KL.value, key_id),))  # the codec's check
        if len(_key_fields) >= _KEY_FIELDS_MAX:
            _key_fields.clear()
        field = _key_fields[key_id] = f"{Tag.KL.value}{key_id};".encode()
    return field


def _b64_field(tag: bytes, data: bytes) -> bytes:
    # Standard base64, as codec.b64, without the round trip through str.
    return tag + b2a_base64(data, newline=False) + b";"


def key_info_fields(key_id: str) -> Fields:
    return key_field(key_id)


def encrypt_fields(key_id: str, plaintext: bytes, aad: bytes) -> Fields:
    fields = key_field(key_id) + _b64_field(b"PT", plaintext)
    # Absent and empty AAD are the same to GCDE; omit it rather than send "".
    return fields + _b64_field(b"AD", aad) if aad else fields


def decrypt_fields(
    key_id: str, key_version: int, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes
) -> Fields:
    fields = b"".join(
        (
            key_field(key_id),
            b"KV%d;" % key_version,
            _b64_field(b"IV", iv),
            _b64_field(b"CT", ciphertext),
            _b64_field(b"TG", tag),
        )
    )
    return fields + _b64_field(b"AD", aad) if aad else fields


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
    # Plain-string tags and positional fields: see _KV.
    return GcmResult(
        reply.integer(_KV), reply.binary(_IV), reply.binary(_CT), reply.binary(_TG)
    )


def parse_decryption(reply: Frame) -> bytes:
    return reply.binary(_PT)


def parse_identity(reply: Frame) -> NodeIdentity:
    return NodeIdentity(
        node_id=reply.text(Tag.NI),
        model=reply.text(Tag.MD),
        version=reply.text(Tag.VR),
        serial=reply.text(Tag.SN),
    )
