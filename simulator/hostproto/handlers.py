"""The host-protocol commands: one request Frame in, one reply Frame out.

No I/O and no concurrency here: the server decides when a request runs and
whether its reply is sent; this module decides what the reply says. Every
failure becomes an error reply, never an exception:

* a CodecError (missing or malformed field) answers with its own code;
* a SimulatorError (unknown key, disabled key, refused usage, missing key
  version, failed decryption) answers with the code the error carries and its
  message, which by contract names at most a label, UUID or version;
* anything else is a bug: it is logged once with its traceback and answered
  INTERNAL_ERROR with a fixed message, so no internal detail reaches the wire.

Fields a command does not know are ignored, as Excrypt devices do, so a newer
client can add optional fields without breaking an older simulator.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from simulator.config import NodeSettings
from simulator.crypto import IV_BYTES, TAG_BYTES, HsmCrypto
from simulator.errors import DecryptFailed, SimulatorError
from simulator.hostproto.codec import (
    CodecError,
    Command,
    ErrorCode,
    Frame,
    Tag,
    _reply_ok_unchecked,
    b64,
    reply_error,
    reply_ok,
    valid_correlation_id,
)
from simulator.keystore import KeyInfo, KeyStore, KeyUsage

log = logging.getLogger(__name__)

KEY_SPEC: Final = "AES_256"  # the only key spec the store creates

# Usages are listed in this fixed order, so a reply never depends on set order.
_USAGE_ORDER: Final = (
    KeyUsage.ENCRYPT,
    KeyUsage.DECRYPT,
    KeyUsage.WRAP,
    KeyUsage.UNWRAP,
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The tags as plain strings: each command reads several, and reading a member
# of an enum class (``Tag.KL``) costs about 0.24 us in Python 3.11.
_ID, _KL, _KU, _KV = Tag.ID.value, Tag.KL.value, Tag.KU.value, Tag.KV.value
_PT, _AD, _IV, _CT = Tag.PT.value, Tag.AD.value, Tag.IV.value, Tag.CT.value
_TG, _DT = Tag.TG.value, Tag.DT.value


@dataclass(frozen=True)
class HandlerContext:
    """What the commands act on."""

    store: KeyStore
    crypto: HsmCrypto
    node: NodeSettings


Handler = Callable[[Frame, HandlerContext], Frame]


def handle(request: Frame, ctx: HandlerContext) -> Frame:
    """The reply to ``request``; never raises an Exception."""
    handler = _HANDLERS.get(request.command)
    if handler is None:
        return reply_error(
            request, ErrorCode.UNKNOWN_COMMAND, f"unknown command {request.command}"
        )
    try:
        _check_correlation_id(request)
        return handler(request, ctx)
    except CodecError as exc:
        return reply_error(request, exc.code, exc.message)
    except DecryptFailed:
        return reply_error(request, ErrorCode.DECRYPT_FAILED, "decryption failed")
    except SimulatorError as exc:
        return reply_error(request, exc.code, str(exc))
    except Exception:
        # The one catch-all of the protocol: a bug must cost one reply, not the
        # connection. Cancellation is a BaseException and passes through.
        log.exception("command failed command=%s", request.command)
        return reply_error(request, ErrorCode.INTERNAL_ERROR, "internal error")


def _check_correlation_id(request: Frame) -> None:
    value = request.get(_ID)
    if value is not None and not valid_correlation_id(value):
        raise CodecError(
            ErrorCode.INVALID_FIELD, "field ID must be 1-16 letters or digits"
        )


def _echo(request: Frame, ctx: HandlerContext) -> Frame:
    data = request.optional_binary(_DT)
    if data is None:
        return reply_ok(request)
    return _reply_ok_unchecked(request, (_DT, b64(data)))


def _node(request: Frame, ctx: HandlerContext) -> Frame:
    node = ctx.node
    return reply_ok(
        request, NI=node.node_id, MD=node.model, VR=node.version, SN=node.serial
    )


def _key_info(request: Frame, ctx: HandlerContext) -> Frame:
    info = _resolve_key(request, ctx.store)
    usages = ",".join(usage.value for usage in _USAGE_ORDER if usage in info.usages)
    return reply_ok(
        request,
        KL=info.label,
        KU=info.uuid,
        KS=KEY_SPEC,
        KG=usages,
        ST=info.state.value,
        KV=str(info.current_version),
    )


def _encrypt(request: Frame, ctx: HandlerContext) -> Frame:
    info = _resolve_key(request, ctx.store)
    plaintext = request.binary(_PT)
    aad = request.optional_binary(_AD)

    result = ctx.crypto.encrypt(info.uuid, plaintext, aad)
    # Base64 and decimal values only: safe without the codec's checks.
    return _reply_ok_unchecked(
        request,
        (_KV, str(result.key_version)),
        (_IV, b64(result.iv)),
        (_CT, b64(result.ciphertext)),
        (_TG, b64(result.tag)),
    )


def _decrypt(request: Frame, ctx: HandlerContext) -> Frame:
    info = _resolve_key(request, ctx.store)
    version = request.integer(_KV)
    iv = _exact_length(request, _IV, IV_BYTES)
    ciphertext = request.binary(_CT)
    tag = _exact_length(request, _TG, TAG_BYTES)
    aad = request.optional_binary(_AD)

    plaintext = ctx.crypto.decrypt(info.uuid, version, iv, ciphertext, tag, aad)
    return _reply_ok_unchecked(request, (_PT, b64(plaintext)))


def _resolve_key(request: Frame, store: KeyStore) -> KeyInfo:
    """The key named by exactly one of KL (label) and KU (UUID)."""
    label, key_uuid = request.get(_KL), request.get(_KU)
    if label is not None and key_uuid is not None:
        raise CodecError(ErrorCode.INVALID_FIELD, "give KL or KU, not both")
    if key_uuid is not None:
        if _UUID.fullmatch(key_uuid) is None:
            raise CodecError(ErrorCode.INVALID_FIELD, "field KU must be a UUID")
        return store.get(key_uuid)
    if label is None:
        raise CodecError(ErrorCode.MISSING_FIELD, "missing field KL or KU")
    return store.get(label)


def _exact_length(request: Frame, tag: str, size: int) -> bytes:
    value = request.binary(tag)
    if len(value) != size:
        raise CodecError(ErrorCode.INVALID_FIELD, f"field {tag} must be {size} bytes")
    return value


_HANDLERS: Final[dict[str, Handler]] = {
    Command.ECHO: _echo,
    Command.NODE: _node,
    Command.KINF: _key_info,
    Command.GCEN: _encrypt,
    Command.GCDE: _decrypt,
}
