"""ciphertextMetadata, the AAD handed to the HSM, and the CDIV.

ciphertextMetadata (spec, Encrypt: "up to 20 bytes ... for internal
housekeeping, e.g. ... versioning of the key material"). Ours is 5 bytes:

    offset  size  field
    0       1     format, 0x01: the HSM AAD is built as below
    1       4     key version, unsigned big-endian, as the HSM reported it

The format byte is there because the spec asks proxies that ever change how
they build the HSM AAD to record which way a ciphertext was made, so old
ciphertexts stay decryptable. Version 0x01 is the only one so far.

HSM AAD (spec, Encrypt, ciphertextMetadata NOTE): the AES-GCM AAD inside the
HSM is

    len16(AAD) || AAD || len8(ciphertextMetadata) || ciphertextMetadata

with the 2-byte length big-endian and absent fields counted as empty. The
lengths stop an AAD/metadata split from being moved between the two fields.

CDIV (Appendix C): Base64 of SHA-256 over
``AAD || ciphertextMetadata || IV || ciphertext || tag``, no lengths (it
guards against bit flips, not against an attacker).
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass

from sidecar.xks.errors import InvalidCiphertextException

FORMAT_V1 = 0x01
_V1 = struct.Struct(">BI")
METADATA_V1_LENGTH = _V1.size
MAX_KEY_VERSION = 0xFFFF_FFFF
_MAX_AAD = 0xFFFF  # what a 2-byte length can say
_MAX_METADATA = 20  # spec: ciphertextMetadata MUST NOT exceed 20 bytes


@dataclass(frozen=True, slots=True)
class CiphertextMetadata:
    """The decoded ciphertextMetadata of a ciphertext this proxy made."""

    key_version: int
    format: int = FORMAT_V1


def encode_metadata(key_version: int) -> bytes:
    """The ciphertextMetadata for a ciphertext made under ``key_version``."""
    if not 0 <= key_version <= MAX_KEY_VERSION:
        raise ValueError(f"key version {key_version} does not fit in 4 bytes")
    return _V1.pack(FORMAT_V1, key_version)


def decode_metadata(metadata: bytes | None) -> CiphertextMetadata:
    """Decode ciphertextMetadata from a Decrypt request.

    Missing, truncated or unknown metadata was not made by this proxy (or was
    altered): the ciphertext is unusable, hence InvalidCiphertextException,
    with a message that says no more than the HSM's tag check would.
    """
    return CiphertextMetadata(key_version=metadata_key_version(metadata))


def metadata_key_version(metadata: bytes | None) -> int:
    """``decode_metadata(metadata).key_version``, without building the object
    (Decrypt needs only the version; same checks, same errors)."""
    if metadata is None or len(metadata) != METADATA_V1_LENGTH:
        raise InvalidCiphertextException(reason="ciphertextMetadata missing or size")
    version_format, key_version = _V1.unpack(metadata)
    if version_format != FORMAT_V1:
        raise InvalidCiphertextException(reason="ciphertextMetadata unknown format")
    return int(key_version)


def hsm_aad(aad: bytes, metadata: bytes) -> bytes:
    """``len16(AAD) || AAD || len8(metadata) || metadata`` (big-endian)."""
    if len(aad) > _MAX_AAD or len(metadata) > _MAX_METADATA:
        raise ValueError("AAD or ciphertextMetadata too long for the HSM AAD")
    return b"".join(
        (len(aad).to_bytes(2, "big"), aad, len(metadata).to_bytes(1, "big"), metadata)
    )


def cdiv(aad: bytes, metadata: bytes, iv: bytes, ciphertext: bytes, tag: bytes) -> str:
    """Appendix C: Base64(SHA-256(AAD || metadata || IV || ciphertext || tag))."""
    digest = hashlib.sha256(b"".join((aad, metadata, iv, ciphertext, tag))).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")
