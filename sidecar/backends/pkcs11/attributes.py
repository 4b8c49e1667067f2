"""What a key object's attributes say: spec, usages, state.

GetKeyMetadata reports the key as the token describes it, never as we
assume it (spec, GetKeyMetadata):

    CKA_KEY_TYPE CKK_AES, CKA_VALUE_LEN 32   keySpec AES_256
    CKA_ENCRYPT / DECRYPT / WRAP / UNWRAP    keyUsage ENCRYPT, DECRYPT, ...
    CKA_START_DATE / CKA_END_DATE            keyStatus

State. PKCS#11 has no "disabled" flag for a key. We use its validity dates
(section 4.7, common key attributes), which every token stores and
operators' tools can set: a key is DISABLED when today (UTC) is before its
CKA_START_DATE or after its CKA_END_DATE, and ENABLED when neither is set
or today lies between them. ``keys disable`` writes yesterday's date into
CKA_END_DATE; ``keys enable`` clears both. PKCS#11 says tokens need not
enforce these dates, and SoftHSMv2 does not, so the backend enforces them
itself on every operation (``operations.py``).

A token may store an empty date as no bytes or as eight ASCII zeros (or
blanks); both read as "not set". The attribute mapper here replaces
python-pkcs11's date handler, which fails on either.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Final

from pkcs11 import Attribute, KeyType
from pkcs11.attributes import AttributeMapper

from sidecar.backends.base import DECRYPT, ENCRYPT, KeyDescription

WRAP: Final = "WRAP"
UNWRAP: Final = "UNWRAP"
AES_256_BYTES: Final = 32

# Usage attribute -> the spec's keyUsage spelling (spec, GetKeyMetadata).
USAGE_ATTRIBUTES: Final = {
    Attribute.ENCRYPT: ENCRYPT,
    Attribute.DECRYPT: DECRYPT,
    Attribute.WRAP: WRAP,
    Attribute.UNWRAP: UNWRAP,
}
DATE_ATTRIBUTES: Final = (Attribute.START_DATE, Attribute.END_DATE)
DESCRIBED: Final = (
    Attribute.KEY_TYPE,
    Attribute.VALUE_LEN,
    *USAGE_ATTRIBUTES,
    *DATE_ATTRIBUTES,
)

Attributes = Mapping[Attribute, object]


def _unpack_date(raw: bytes) -> datetime.date | None:
    # CK_DATE is "YYYYMMDD" in ASCII; empty, zeros or blanks mean unset.
    if not raw.strip(b"0 \x00"):
        return None
    text = raw.decode("ascii")
    return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _pack_date(value: datetime.date | None) -> bytes:
    return b"" if value is None else value.strftime("%Y%m%d").encode("ascii")


def attribute_mapper() -> AttributeMapper:
    """python-pkcs11's mapper, with dates that may be unset."""
    mapper = AttributeMapper()
    for attribute in DATE_ATTRIBUTES:
        mapper.register_handler(attribute, _pack_date, _unpack_date)
    return mapper


def today() -> datetime.date:
    """Today in UTC: the one calendar the sidecar and the admin tool share."""
    return datetime.datetime.now(datetime.UTC).date()


def is_enabled(attributes: Attributes, on: datetime.date) -> bool:
    """True unless ``on`` is outside the key's validity dates."""
    start = attributes.get(Attribute.START_DATE)
    end = attributes.get(Attribute.END_DATE)
    if isinstance(start, datetime.date) and on < start:
        return False
    return not (isinstance(end, datetime.date) and on > end)


def key_spec(attributes: Attributes) -> str:
    """AES_256 for a 32-byte AES key; otherwise what it is, which XKS refuses."""
    key_type = attributes.get(Attribute.KEY_TYPE)
    length = attributes.get(Attribute.VALUE_LEN)
    if key_type != KeyType.AES or not isinstance(length, int):
        return f"UNSUPPORTED_{key_type}"
    return f"AES_{length * 8}"


def usages(attributes: Attributes) -> frozenset[str]:
    allowed = USAGE_ATTRIBUTES.items()
    return frozenset(name for attribute, name in allowed if attributes.get(attribute))


def describe(attributes: Attributes, version: int, on: datetime.date) -> KeyDescription:
    """The KeyDescription of a key whose current version has ``attributes``."""
    return KeyDescription(
        key_spec=key_spec(attributes),
        usages=usages(attributes),
        enabled=is_enabled(attributes, on),
        current_version=version,
    )
