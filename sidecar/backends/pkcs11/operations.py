"""The backend's work on a leased session: find key versions, use them.

Each function here is one worker-thread call's worth of PKCS#11 (the session
pool runs it), raises XKS errors for what the caller got wrong, and lets
PKCS#11 failures through for the pool to judge and the backend to map.

Looking a version up is one C_FindObjects with CKA_CLASS CKO_SECRET_KEY,
CKA_KEY_TYPE CKK_AES and the key id attribute set to the version's label
(``labels.py``). Two matches are an operator's mistake we refuse to guess
about. No match may also mean the session lost its login (a token logged
out, all sessions closed): private keys are then invisible and everything
looks "not found", so a miss on version 1 first checks the login and, if it
is gone, fails as a broken session, which the pool retries on a fresh one.

TODO: object handles are looked up again for every operation (a find, and
python-pkcs11 reads the object's flags and key type): about six round trips
to a network HSM where caching handles per session would need two. SoftHSMv2
does not care; measure on the Futurex before adding the cache.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Final

from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import DecryptMixin, EncryptMixin

from sidecar.backends.base import GcmResult, KeyDescription
from sidecar.backends.pkcs11 import attributes as attrs
from sidecar.backends.pkcs11 import gcm
from sidecar.backends.pkcs11.labels import FIRST_VERSION, MAX_VERSION, version_label
from sidecar.backends.pkcs11.pool import Lease
from sidecar.backends.pkcs11.settings import IvSource, KeyIdAttribute
from sidecar.xks.errors import (
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    InvalidStateException,
    KeyNotFoundException,
)

# Fixed and harmless: the health probe proves the round trip, not a secret.
HEALTH_PLAINTEXT: Final = b"PKCS#11 XKS sidecar health check"
HEALTH_AAD: Final = b"xks-health"


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """How external key ids become key objects on this token."""

    id_attribute: KeyIdAttribute

    def _template(self, label: str) -> dict[Attribute, Any]:
        if self.id_attribute is KeyIdAttribute.ID:
            value: object = label.encode("utf-8")
            attribute = Attribute.ID
        else:
            value, attribute = label, Attribute.LABEL
        return {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            attribute: value,
        }

    def find(self, lease: Lease, key_id: str, version: int) -> Any | None:
        """Version ``version`` of ``key_id``, or None if there is none."""
        label = version_label(key_id, version)
        found = list(lease.session.get_objects(self._template(label)))
        if len(found) > 1:
            raise InternalException(reason=f"{len(found)} AES keys labelled {label}")
        return found[0] if found else None

    def first(self, lease: Lease, key_id: str) -> Any:
        """Version 1 of ``key_id``; KeyNotFoundException if it has none."""
        key = self.find(lease, key_id, FIRST_VERSION)
        if key is None:
            if not lease.logged_in():
                raise p11.UserNotLoggedIn()
            raise KeyNotFoundException(reason=f"no AES key labelled {key_id}")
        return key

    def current(self, lease: Lease, key_id: str, hint: int) -> tuple[int, Any]:
        """(current version, its object), probing upward from ``hint``."""
        version, key = FIRST_VERSION, self.first(lease, key_id)
        if hint > FIRST_VERSION:
            hinted = self.find(lease, key_id, hint)
            if hinted is not None:
                version, key = hint, hinted
        while version < MAX_VERSION:
            following = self.find(lease, key_id, version + 1)
            if following is None:
                break
            version, key = version + 1, following
        return version, key


def _require_enabled(key: Any) -> None:
    # The token need not enforce its validity dates (attributes.py), so we do.
    dates = key.get_attributes(attrs.DATE_ATTRIBUTES)
    if not attrs.is_enabled(dates, attrs.today()):
        raise InvalidStateException(reason="key version outside its validity dates")


def describe(lease: Lease, lookup: KeyLookup, key_id: str, hint: int) -> KeyDescription:
    """The key as its current version's attributes describe it."""
    version, key = lookup.current(lease, key_id, hint)
    described = key.get_attributes(attrs.DESCRIBED)
    return attrs.describe(described, version, attrs.today())


def encrypt(
    lease: Lease,
    lookup: KeyLookup,
    key_id: str,
    version: int,
    plaintext: bytes,
    aad: bytes,
    source: IvSource,
) -> GcmResult:
    """AES-GCM under ``version`` (the current one, as describe_key found it)."""
    key = lookup.find(lease, key_id, version)
    if key is None:
        # The version we were told is current went away: look again.
        version, key = lookup.current(lease, key_id, FIRST_VERSION)
    _require_enabled(key)
    if not isinstance(key, EncryptMixin):
        # python-pkcs11 builds the object from CKA_ENCRYPT: false means no
        # encrypt method at all, so the token is never asked.
        raise InvalidKeyUsageException(reason="CKA_ENCRYPT is false")
    iv, ciphertext, tag = gcm.encrypt(lease, key, plaintext, aad, source)
    return GcmResult(version, iv, ciphertext, tag)


def decrypt(
    lease: Lease,
    lookup: KeyLookup,
    key_id: str,
    version: int,
    sealed: tuple[bytes, bytes, bytes],
    aad: bytes,
) -> bytes:
    """AES-GCM decryption of ``sealed`` (IV, ciphertext, tag) under ``version``."""
    key = lookup.find(lease, key_id, version)
    if key is None:
        lookup.first(lease, key_id)  # KeyNotFound if the key itself is gone
        raise InvalidCiphertextException(reason=f"no key version {version}")
    _require_enabled(key)
    if not isinstance(key, DecryptMixin):
        raise InvalidKeyUsageException(reason="CKA_DECRYPT is false")
    return gcm.decrypt(lease, key, *sealed, aad)


def round_trip(lease: Lease, lookup: KeyLookup, key_id: str, source: IvSource) -> bool:
    """Encrypt and decrypt a test text with ``key_id``; True if it came back."""
    version, _ = lookup.current(lease, key_id, FIRST_VERSION)
    text, aad = HEALTH_PLAINTEXT, HEALTH_AAD
    result = encrypt(lease, lookup, key_id, version, text, aad, source)
    sealed = (result.iv, result.ciphertext, result.tag)
    opened = decrypt(lease, lookup, key_id, version, sealed, aad)
    return hmac.compare_digest(opened, text)
