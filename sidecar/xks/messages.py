"""JSON request bodies → typed, validated requests (spec, "API operations").

Each ``parse_*`` function takes the raw body bytes and returns a frozen
dataclass, or raises ``ValidationException`` naming the offending field.

Rules the spec leaves open, and what we chose:

* The body must be UTF-8 (RFC 8259 section 8.1 for JSON between systems);
  ``json.loads`` would otherwise guess UTF-16/32 from the bytes.
* Duplicate object keys are rejected: with last-wins parsing, what we log
  and authorize could differ from what another parser of the same signed
  body sees. NaN and Infinity (not JSON) are rejected too.
* Unknown fields, at top level and in requestMetadata, are ignored: KMS may
  add metadata fields (Appendix B) and must not break us by doing so.
* A required string that is empty counts as missing. An OPTIONAL field that
  is ``null`` counts as absent.
* Base64 is the standard alphabet with padding (the spec cites RFC 4648
  section 4), in canonical form: no whitespace, no missing padding, no
  non-zero bits after the last byte.
* A value the spec allows but that exceeds our own maximum is answered with
  ``UnsupportedOperationException``, as the spec's error table prescribes
  for "a parameter value [that] exceeded the maximum size that is currently
  supported by a specific implementation".
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sidecar.xks.errors import (
    UnsupportedOperationException,
    ValidationException,
    XksError,
)
from sidecar.xks.routes import Operation

# The spec's minimums are 4300 bytes of plaintext/ciphertext and 8192 bytes of
# AAD. Our maxima give headroom above those while keeping the largest request
# inside one 65536-byte host-protocol frame: base64(8192) + base64(2 + 16384 +
# 1 + 20) is about 33 KiB. The AAD maximum must also stay below 65536, since
# the HSM AAD carries its length in two bytes (see envelope.py).
MAX_PLAINTEXT = 8192
MAX_AAD = 16384
# "ciphertextMetadata ... MUST NOT exceed 20 bytes (before Base64 encoding)".
MAX_CIPHERTEXT_METADATA = 20
# "initializationVector MUST be either 12 bytes (96 bits) or 16 bytes".
IV_LENGTHS = frozenset({12, 16})
_MAX_IV = max(IV_LENGTHS)
# "Authentication tag size MUST be 16 bytes (128 bits)".
TAG_LENGTH = 16
# ARNs of up to 2048 characters MUST be supported; we take twice that for any
# metadata string, chosen without measuring, to bound what we log.
MAX_METADATA_STRING = 4096
# Suggested cap for the data plane's body reader: the largest valid body is
# about 40 KiB (the two base64 fields above plus ARNs); the rest is room for
# metadata fields KMS may add.
MAX_REQUEST_BODY = 65536

AES_GCM = "AES_GCM"
SHA_256 = "SHA_256"

# Canonical base64: before "==" the last symbol carries 2 data bits and 4
# zero bits; before "=" it carries 4 data bits and 2 zero bits.
_LAST_BEFORE_2PAD = frozenset("AQgw")
_LAST_BEFORE_1PAD = frozenset("AEIMQUYcgkosw048")


@dataclass(frozen=True, slots=True)
class RequestMetadata:
    """``requestMetadata``; which fields are required depends on the API."""

    kms_request_id: str
    kms_operation: str
    aws_principal_arn: str | None = None
    kms_key_arn: str | None = None
    kms_via_service: str | None = None
    aws_source_vpc: str | None = None
    aws_source_vpce: str | None = None


@dataclass(frozen=True, slots=True)
class GetHealthStatusRequest:
    metadata: RequestMetadata


@dataclass(frozen=True, slots=True)
class GetKeyMetadataRequest:
    metadata: RequestMetadata


@dataclass(frozen=True, slots=True)
class EncryptRequest:
    """Encrypt; an absent AAD is ``b""`` (the spec treats both alike)."""

    metadata: RequestMetadata
    plaintext: bytes = field(repr=False)
    additional_authenticated_data: bytes = field(repr=False)
    # None unless the caller asked for a CDIV ("SHA_256" is the only value).
    cdiv_algorithm: str | None


@dataclass(frozen=True, slots=True)
class DecryptRequest:
    metadata: RequestMetadata
    ciphertext: bytes = field(repr=False)
    ciphertext_metadata: bytes | None
    additional_authenticated_data: bytes = field(repr=False)
    initialization_vector: bytes
    authentication_tag: bytes


XksRequest = (
    GetHealthStatusRequest | GetKeyMetadataRequest | EncryptRequest | DecryptRequest
)

# requestMetadata fields marked REQUIRED, per API. kmsKeyArn is optional for
# GetKeyMetadata (change log 0.0.12) and absent from the health request.
_HEALTH_REQUIRED = ("kmsRequestId", "kmsOperation")
_KEY_METADATA_REQUIRED = ("kmsRequestId", "kmsOperation", "awsPrincipalArn")
_CRYPTO_REQUIRED = ("kmsRequestId", "kmsOperation", "awsPrincipalArn", "kmsKeyArn")


# "kmsRequestId":"<value>" as a client writes it: up to 128 characters, no
# quote, backslash or control character (KMS sends a UUID). Chosen so the
# search stays linear and never matches across two JSON members.
_REQUEST_ID = re.compile(
    rb'"kmsRequestId"\s*:\s*"([\x20-\x21\x23-\x5b\x5d-\x7e]{1,128})"'
)


def peek_request_id(body: bytes) -> str | None:
    """The body's kmsRequestId, found without parsing or validating the body.

    For the log line of a request refused before its body is read (overload,
    ``sidecar.throttle``): a search, not a parse, so it may find the value of
    a request whose JSON is malformed, and finds nothing in an exotic
    spelling (escapes). Never use it for a decision.
    """
    match = _REQUEST_ID.search(body)
    return match.group(1).decode("ascii") if match else None


def parse_request(operation: Operation, body: bytes) -> XksRequest:
    """Parse ``body`` as the request of ``operation``."""
    # Keyed by the member's value: an Enum member hashes in Python code.
    return _PARSERS[operation._value_](body)


def parse_get_health_status(body: bytes) -> GetHealthStatusRequest:
    return GetHealthStatusRequest(_metadata(_load(body), _HEALTH_REQUIRED))


def parse_get_key_metadata(body: bytes) -> GetKeyMetadataRequest:
    return GetKeyMetadataRequest(_metadata(_load(body), _KEY_METADATA_REQUIRED))


def parse_encrypt(body: bytes) -> EncryptRequest:
    doc = _load(body)
    metadata = _metadata(doc, _CRYPTO_REQUIRED)
    plaintext = _base64(doc, "plaintext", MAX_PLAINTEXT)
    aad = _optional_base64(doc, "additionalAuthenticatedData", MAX_AAD)
    _require_value(doc, "encryptionAlgorithm", AES_GCM)
    cdiv = _optional_string(doc, "ciphertextDataIntegrityValueAlgorithm")
    if cdiv is not None and cdiv != SHA_256:
        _invalid(f"ciphertextDataIntegrityValueAlgorithm must be {SHA_256}")
    return EncryptRequest(metadata, plaintext, aad or b"", cdiv)


def parse_decrypt(body: bytes) -> DecryptRequest:
    doc = _load(body)
    metadata = _metadata(doc, _CRYPTO_REQUIRED)
    ciphertext = _base64(doc, "ciphertext", MAX_PLAINTEXT)
    # Over 20 bytes breaks the spec itself, hence ValidationException.
    ciphertext_metadata = _optional_base64(
        doc, "ciphertextMetadata", MAX_CIPHERTEXT_METADATA, ValidationException
    )
    _require_value(doc, "encryptionAlgorithm", AES_GCM)
    aad = _optional_base64(doc, "additionalAuthenticatedData", MAX_AAD)
    iv = _base64(doc, "initializationVector", _MAX_IV, ValidationException)
    if len(iv) not in IV_LENGTHS:
        _invalid("initializationVector must be 12 or 16 bytes")
    tag = _base64(doc, "authenticationTag", TAG_LENGTH, ValidationException)
    if len(tag) != TAG_LENGTH:
        _invalid(f"authenticationTag must be {TAG_LENGTH} bytes")
    return DecryptRequest(
        metadata, ciphertext, ciphertext_metadata, aad or b"", iv, tag
    )


_PARSERS: dict[str, Callable[[bytes], XksRequest]] = {
    Operation.GET_HEALTH_STATUS.value: parse_get_health_status,
    Operation.GET_KEY_METADATA.value: parse_get_key_metadata,
    Operation.ENCRYPT.value: parse_encrypt,
    Operation.DECRYPT.value: parse_decrypt,
}


# --- JSON -------------------------------------------------------------------


def _invalid(message: str) -> NoReturn:
    raise ValidationException(message)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _invalid("request body has a duplicate key in a JSON object")
    return obj


def _no_constants(name: str) -> NoReturn:
    _invalid(f"request body is not valid JSON ({name} is not a JSON value)")


# One decoder for every request: ``json.loads`` with hooks builds a decoder
# and its scanner on each call. A leading BOM fails at position 0 here as it
# does in ``json.loads``.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_no_constants
)


def _load(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        doc = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise ValidationException("request body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ValidationException(
            f"request body is not valid JSON (position {exc.pos})"
        ) from exc
    except RecursionError as exc:
        raise ValidationException("request body nests too deeply") from exc
    if not isinstance(doc, dict):
        _invalid("request body must be a JSON object")
    return doc


# --- fields -----------------------------------------------------------------


def _metadata(doc: dict[str, Any], required: tuple[str, ...]) -> RequestMetadata:
    raw = doc.get("requestMetadata")
    if raw is None or raw == {}:
        _invalid("requestMetadata is required")
    if not isinstance(raw, dict):
        _invalid("requestMetadata must be a JSON object")
    values: list[Any] = list(map(raw.get, _METADATA_FIELDS))
    if not _plainly_valid(values, len(required)):
        return _checked_metadata(raw, required)
    return RequestMetadata(
        values[0],
        values[1],
        values[2] or None,
        values[3] or None,
        values[4] or None,
        values[5] or None,
        values[6] or None,
    )


def _plainly_valid(values: list[Any], required: int) -> bool:
    """True if no rule of ``_metadata_string`` can fail on ``values``.

    The common case, checked in one pass; any doubt goes to the field-by-
    field check, which raises the exact error. The required fields are the
    first ``required`` of ``_METADATA_FIELDS`` for every API.
    """
    for index, value in enumerate(values):
        if value is None or value == "":
            if index < required:
                return False
        elif type(value) is not str or len(value) > MAX_METADATA_STRING:
            return False
    return True


def _checked_metadata(
    raw: dict[str, Any], required: tuple[str, ...]
) -> RequestMetadata:
    values = {
        name: _metadata_string(raw, name, name in required) for name in _METADATA_FIELDS
    }
    return RequestMetadata(
        kms_request_id=values["kmsRequestId"] or "",
        kms_operation=values["kmsOperation"] or "",
        aws_principal_arn=values["awsPrincipalArn"],
        kms_key_arn=values["kmsKeyArn"],
        kms_via_service=values["kmsViaService"],
        aws_source_vpc=values["awsSourceVpc"],
        aws_source_vpce=values["awsSourceVpce"],
    )


_METADATA_FIELDS = (
    "kmsRequestId",
    "kmsOperation",
    "awsPrincipalArn",
    "kmsKeyArn",
    "kmsViaService",
    "awsSourceVpc",
    "awsSourceVpce",
)
# ``_plainly_valid`` relies on this.
assert all(
    _METADATA_FIELDS[: len(names)] == names
    for names in (_HEALTH_REQUIRED, _KEY_METADATA_REQUIRED, _CRYPTO_REQUIRED)
)


def _metadata_string(raw: dict[str, Any], name: str, required: bool) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            _invalid(f"requestMetadata.{name} is required")
        return None
    if not isinstance(value, str):
        _invalid(f"requestMetadata.{name} must be a string")
    if len(value) > MAX_METADATA_STRING:
        raise UnsupportedOperationException(
            f"requestMetadata.{name} is longer than {MAX_METADATA_STRING} characters"
        )
    return value


def _optional_string(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        _invalid(f"{name} must be a string")
    return value


def _require_value(doc: dict[str, Any], name: str, expected: str) -> None:
    value = doc.get(name)
    if value is None or value == "":
        _invalid(f"{name} is required")
    if value != expected:
        _invalid(f"{name} must be {expected}")


def _base64(
    doc: dict[str, Any],
    name: str,
    max_bytes: int,
    too_large: type[XksError] = UnsupportedOperationException,
) -> bytes:
    value = _optional_base64(doc, name, max_bytes, too_large)
    if not value:
        _invalid(f"{name} is required")
    return value


def _optional_base64(
    doc: dict[str, Any],
    name: str,
    max_bytes: int,
    too_large: type[XksError] = UnsupportedOperationException,
) -> bytes | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        _invalid(f"{name} must be a Base64 string")
    # Checked before decoding too, so an oversized value costs no decode.
    # Base64 takes 4 symbols per 3 bytes, padded.
    if len(value) > 4 * -(-max_bytes // 3):
        raise too_large(f"{name} is larger than {max_bytes} bytes")
    decoded = decode_base64(value)
    if decoded is None:
        _invalid(f"{name} is not valid Base64")
    if len(decoded) > max_bytes:
        raise too_large(f"{name} is larger than {max_bytes} bytes")
    return decoded


def decode_base64(text: str) -> bytes | None:
    """Strict, canonical standard Base64 (RFC 4648 section 4), or None."""
    if len(text) % 4:
        return None
    if text[-1:] == "=":
        if text[-2] == "=":
            if text[-3] not in _LAST_BEFORE_2PAD:
                return None
        elif text[-2] not in _LAST_BEFORE_1PAD:
            return None
    try:
        # strict_mode rejects symbols outside the alphabet (whitespace
        # included) and "=" anywhere but at the end. A str is decoded as
        # is: one with a non-ASCII character raises ValueError (of which
        # binascii.Error is a kind), so no ASCII encode is needed first.
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        return None
