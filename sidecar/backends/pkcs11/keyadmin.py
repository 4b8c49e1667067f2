"""Key management on a PKCS#11 token, by the label convention of ``labels.py``.

What the simulator's admin console does to its key store (docs/
simulator-console.md, "keys" commands), done to a token: create a key,
rotate it (one more version), disable or enable it, change its usages,
destroy it, show and list keys. The admin CLI (``admin.py``) and the
provisioning helper (``provision.py``) call these; so can tests.

Keys are made inside the token (CKM_AES_KEY_GEN), 32 bytes, sensitive and
not extractable: their value never leaves the HSM. CKA_LABEL and CKA_ID
both carry the version label, so either can serve as the key id attribute.

SoftHSMv2 (2.6) cannot read back a validity date of a *private* object: it
stores the date in clear but decrypts it on reading, and fails with
CKR_GENERAL_ERROR. On SoftHSMv2 keys are therefore created with CKA_PRIVATE
false (they are still sensitive: their value cannot be read), so that
``disable`` works; on every other token they are private. ``disable``
reads the date back and refuses, changing nothing, where the token cannot
keep it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Final

from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error

from sidecar.backends.pkcs11 import attributes as attrs
from sidecar.backends.pkcs11.labels import (
    FIRST_VERSION,
    check_external_key_id,
    parse_label,
    version_label,
)
from sidecar.backends.pkcs11.operations import KeyLookup
from sidecar.backends.pkcs11.pool import Lease
from sidecar.backends.pkcs11.settings import KeyIdAttribute

USAGE_NAMES: Final = {
    name: attribute for attribute, name in attrs.USAGE_ATTRIBUTES.items()
}
_SOFTHSM_MANUFACTURER: Final = "SoftHSM"


class AdminError(Exception):
    """The request cannot be done (no such key, label taken, ...)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as ``keys show`` prints it."""

    key_id: str
    key_spec: str
    usages: frozenset[str]
    enabled: bool
    current_version: int
    versions: tuple[int, ...]
    end_date: datetime.date | None


def parse_usages(text: str) -> frozenset[str]:
    """``encrypt,decrypt`` (any case) or ``none`` -> spec usage names."""
    if text.strip().lower() == "none":
        return frozenset()
    names = frozenset(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = names - USAGE_NAMES.keys()
    if unknown or not names:
        raise AdminError(f"usages must be a list of {','.join(USAGE_NAMES)} or none")
    return names


class KeyAdmin:
    """Key management through one logged-in read-write session."""

    def __init__(self, lease: Lease, id_attribute: KeyIdAttribute) -> None:
        self._lease = lease
        self._session = lease.session
        self._lookup = KeyLookup(id_attribute)
        self._id_attribute = id_attribute

    @property
    def session(self) -> Any:
        """The python-pkcs11 session, for operator tasks not covered here."""
        return self._session

    # --- reading ----------------------------------------------------------

    def show(self, key_id: str) -> KeyInfo:
        version, key = self._current(key_id)
        described = key.get_attributes(attrs.DESCRIBED)
        return KeyInfo(
            key_id=key_id,
            key_spec=attrs.key_spec(described),
            usages=attrs.usages(described),
            enabled=attrs.is_enabled(described, attrs.today()),
            current_version=version,
            versions=tuple(range(FIRST_VERSION, version + 1)),
            end_date=_date(described.get(Attribute.END_DATE)),
        )

    def list_keys(self) -> list[KeyInfo]:
        """Every key on the token that follows the label convention."""
        ids = sorted({key_id for _, key_id, _ in self._scan()})
        return [self.show(key_id) for key_id in ids]

    # --- changing ---------------------------------------------------------

    def exists(self, key_id: str) -> bool:
        _check(key_id)
        return self._lookup.find(self._lease, key_id, FIRST_VERSION) is not None

    def create(self, key_id: str, usages: frozenset[str]) -> KeyInfo:
        if self.exists(key_id):
            raise AdminError(f"key {key_id} already exists")
        self._generate(key_id, FIRST_VERSION, usages, None)
        return self.show(key_id)

    def rotate(self, key_id: str) -> KeyInfo:
        """Add version N+1, with the usages and dates of version N."""
        version, key = self._current(key_id)
        described = key.get_attributes(attrs.DESCRIBED)
        self._generate(key_id, version + 1, attrs.usages(described), described)
        return self.show(key_id)

    def set_enabled(self, key_id: str, enabled: bool) -> KeyInfo:
        end = None if enabled else attrs.today() - datetime.timedelta(days=1)
        for key in self._version_objects(key_id):
            if enabled:
                key[Attribute.START_DATE] = None
            self._set_end_date(key, end)
        return self.show(key_id)

    def set_usages(self, key_id: str, usages: frozenset[str]) -> KeyInfo:
        for key in self._version_objects(key_id):
            for name, attribute in USAGE_NAMES.items():
                key[attribute] = name in usages
        return self.show(key_id)

    def destroy(self, key_id: str) -> int:
        """Destroy every version; how many objects were destroyed."""
        keys = self._version_objects(key_id)
        for key in keys:
            key.destroy()
        return len(keys)

    # --- helpers ----------------------------------------------------------

    def _current(self, key_id: str) -> tuple[int, Any]:
        _check(key_id)
        if self._lookup.find(self._lease, key_id, FIRST_VERSION) is None:
            raise AdminError(f"no key {key_id}")
        return self._lookup.current(self._lease, key_id, FIRST_VERSION)

    def _version_objects(self, key_id: str) -> list[Any]:
        """Versions 1 to current: the ones the backend can reach."""
        current, _ = self._current(key_id)
        found = [
            self._lookup.find(self._lease, key_id, v) for v in range(1, current + 1)
        ]
        return [key for key in found if key is not None]

    def _scan(self) -> list[tuple[Any, str, int]]:
        """Every AES key whose label follows the convention: (key, id, version).

        Reads the label of every AES key on the token: fine for an admin
        tool, which is why the backend never does it (labels.py).
        """
        template = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
        }
        found = []
        for key in self._session.get_objects(template):
            parsed = parse_label(self._label_of(key))
            if parsed is not None:
                found.append((key, *parsed))
        return found

    def _label_of(self, key: Any) -> str:
        if self._id_attribute is KeyIdAttribute.ID:
            raw: bytes = key[Attribute.ID]
            return raw.decode("utf-8", "replace")
        label: str = key[Attribute.LABEL]
        return label

    def _generate(
        self, key_id: str, version: int, usages: frozenset[str], dates: Any
    ) -> None:
        label = version_label(key_id, version)
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: not self._is_softhsm(),
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: True,
        }
        template.update({a: n in usages for n, a in USAGE_NAMES.items()})
        if dates is not None:
            template.update({a: dates.get(a) for a in attrs.DATE_ATTRIBUTES})
        self._session.generate_key(
            KeyType.AES,
            attrs.AES_256_BYTES * 8,
            id=label.encode("utf-8"),
            label=label,
            store=True,
            template=template,
        )

    def _is_softhsm(self) -> bool:
        manufacturer = str(self._lease.token_info().manufacturer_id)
        return manufacturer.startswith(_SOFTHSM_MANUFACTURER)

    def _set_end_date(self, key: Any, end: datetime.date | None) -> None:
        key[Attribute.END_DATE] = end
        try:
            _ = key[Attribute.END_DATE]  # read back: can the token keep it?
        except PKCS11Error as exc:
            key[Attribute.END_DATE] = None
            raise AdminError(
                "this token cannot keep a validity date on this key (SoftHSMv2"
                " cannot on private keys); nothing was changed"
            ) from exc


def _date(value: object) -> datetime.date | None:
    return value if isinstance(value, datetime.date) else None


def _check(key_id: str) -> None:
    try:
        check_external_key_id(key_id)
    except ValueError as exc:
        raise AdminError(str(exc)) from exc
