"""External key ids, key versions, and the object labels that carry them.

The convention (docs/backend-pkcs11.md, "Keys and versions"): the secret key
object whose key id attribute (CKA_LABEL by default) is exactly ``<id>`` is
version 1 of external key ``<id>``; the object labelled ``<id>#v<N>`` is
version N (N >= 2, decimal, no leading zeros). The current version is the
highest N such that versions 1 to N all exist; new encryptions use it, and
every version keeps decrypting what it encrypted.

Why this shape: an operator rotating a key on a real HSM creates one more
key with the vendor's own tools, and needs nothing but a label to do it.
``#`` cannot occur in an external key id (spec, "API operations": letters,
digits, ``-``, ``.`` and ``_`` only), so ``<id>#v2`` can never be another
key's version 1. PKCS#11 finds objects by exact attribute value only
(C_FindObjectsInit matches a template), so versions are discovered by asking
for ``<id>#v<N+1>`` until there is none, which is why they must be
contiguous. This module is pure: no PKCS#11 calls.
"""

from __future__ import annotations

import re
from typing import Final

VERSION_SEPARATOR: Final = "#v"
FIRST_VERSION: Final = 1
# ciphertextMetadata holds the version in 4 bytes (sidecar/xks/envelope.py).
MAX_VERSION: Final = 0xFFFF_FFFF
# Spec, "API operations": at most 128 characters of A-Z a-z 0-9 - . _
_EXTERNAL_KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_VERSION_LABEL: Final = re.compile(r"([A-Za-z0-9._-]{1,128})#v([1-9][0-9]*)")


def check_external_key_id(key_id: str) -> None:
    """Raise ValueError unless ``key_id`` is a valid external key id."""
    if not _EXTERNAL_KEY_ID.fullmatch(key_id):
        raise ValueError(
            f"{key_id!r} is not an external key id: 1 to 128 of A-Z a-z 0-9 . _ -"
        )


def version_label(key_id: str, version: int) -> str:
    """The label of version ``version`` of external key ``key_id``."""
    if not FIRST_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"key version {version} is out of range")
    if version == FIRST_VERSION:
        return key_id
    return f"{key_id}{VERSION_SEPARATOR}{version}"


def parse_label(label: str) -> tuple[str, int] | None:
    """(external key id, version) that ``label`` names, or None if neither."""
    if _EXTERNAL_KEY_ID.fullmatch(label):
        return label, FIRST_VERSION
    match = _VERSION_LABEL.fullmatch(label)
    if match is None:
        return None
    version = int(match.group(2))
    if version == FIRST_VERSION or version > MAX_VERSION:
        return None  # "#v1" is not how version 1 is written
    return match.group(1), version
