"""Typed XKS responses and their compact one-line JSON encoding.

The spec fixes each response's fields ("Response Payload Syntax" per API).
Invariants the spec states are checked when a response is built, so a
backend bug surfaces as an error here rather than as a response KMS rejects.

Encrypt and Decrypt responses hold only Base64 text, which never needs JSON
escaping, so they are formatted directly: they are most of the traffic.
"""

from __future__ import annotations

import json
from binascii import b2a_base64
from collections.abc import Sequence
from dataclasses import dataclass, field

# GetKeyMetadata: "The response MUST NOT contain more than ten keyUsage values".
MAX_KEY_USAGES = 10
# GetHealthStatus: "at least one and no more than ten entries in ekmFleetDetails".
MAX_EKM_NODES = 10
HEALTH_STATUSES = frozenset({"ACTIVE", "DEGRADED", "UNAVAILABLE"})
KEY_STATUSES = frozenset({"ENABLED", "DISABLED"})


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode("ascii")


# ``json.dumps(document, separators=(",", ":"))``, with the encoder built once.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _compact(document: object) -> bytes:
    return _COMPACT.encode(document).encode("ascii")


@dataclass(frozen=True, slots=True)
class EncryptResponse:
    ciphertext: bytes = field(repr=False)
    initialization_vector: bytes
    authentication_tag: bytes
    ciphertext_metadata: bytes | None = None
    # Base64 already (envelope.cdiv); present iff the request asked for it.
    ciphertext_data_integrity_value: str | None = None

    def to_json(self) -> bytes:
        # One f-string, the Base64 done by binascii directly (what
        # base64.b64encode calls): Encrypt is most of the traffic.
        metadata = self.ciphertext_metadata
        cdiv = self.ciphertext_data_integrity_value
        text = (
            f'{{"ciphertext":"{_b64(self.ciphertext)}"'
            f',"initializationVector":"{_b64(self.initialization_vector)}"'
            f',"authenticationTag":"{_b64(self.authentication_tag)}"'
            + ("" if metadata is None else f',"ciphertextMetadata":"{_b64(metadata)}"')
            + ("" if cdiv is None else f',"ciphertextDataIntegrityValue":"{cdiv}"')
            + "}"
        )
        return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class DecryptResponse:
    plaintext: bytes = field(repr=False)

    def to_json(self) -> bytes:
        return f'{{"plaintext":"{_b64(self.plaintext)}"}}'.encode("ascii")


@dataclass(frozen=True, slots=True)
class KeyMetadataResponse:
    key_spec: str
    key_usage: tuple[str, ...]
    key_status: str

    def __post_init__(self) -> None:
        if len(self.key_usage) > MAX_KEY_USAGES:
            raise ValueError(f"more than {MAX_KEY_USAGES} keyUsage values")
        if self.key_status not in KEY_STATUSES:
            raise ValueError(f"keyStatus {self.key_status!r} is not in the spec")

    def to_json(self) -> bytes:
        return _compact(
            {
                "keySpec": self.key_spec,
                "keyUsage": list(self.key_usage),
                "keyStatus": self.key_status,
            }
        )


@dataclass(frozen=True, slots=True)
class EkmNode:
    """One ekmFleetDetails entry: an HSM behind this proxy."""

    id: str
    model: str
    health_status: str

    def __post_init__(self) -> None:
        if self.health_status not in HEALTH_STATUSES:
            raise ValueError(f"healthStatus {self.health_status!r} is not in the spec")


@dataclass(frozen=True, slots=True)
class HealthStatusResponse:
    xks_proxy_fleet_size: int
    xks_proxy_vendor: str
    xks_proxy_model: str
    ekm_vendor: str
    ekm_fleet_details: Sequence[EkmNode]

    def __post_init__(self) -> None:
        if self.xks_proxy_fleet_size < 1:
            raise ValueError("xksProxyFleetSize must be an integer above zero")
        if not 1 <= len(self.ekm_fleet_details) <= MAX_EKM_NODES:
            raise ValueError(f"ekmFleetDetails needs 1 to {MAX_EKM_NODES} entries")

    def to_json(self) -> bytes:
        return _compact(
            {
                "xksProxyFleetSize": self.xks_proxy_fleet_size,
                "xksProxyVendor": self.xks_proxy_vendor,
                "xksProxyModel": self.xks_proxy_model,
                "ekmVendor": self.ekm_vendor,
                "ekmFleetDetails": [
                    {"id": n.id, "model": n.model, "healthStatus": n.health_status}
                    for n in self.ekm_fleet_details
                ],
            }
        )


XksResponse = (
    EncryptResponse | DecryptResponse | KeyMetadataResponse | HealthStatusResponse
)
