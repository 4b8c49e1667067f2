"""The XKS operations against an in-memory key manager."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sidecar.backends.base import GcmResult, KeyDescription, KeyManager
from sidecar.xks import service
from sidecar.xks.envelope import cdiv as real_cdiv
from sidecar.xks.envelope import decode_metadata, encode_metadata
from sidecar.xks.errors import (
    AccessDeniedException,
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    InvalidStateException,
    KeyNotFoundException,
)
from sidecar.xks.messages import (
    DecryptRequest,
    EncryptRequest,
    GetHealthStatusRequest,
    GetKeyMetadataRequest,
    RequestMetadata,
)
from sidecar.xks.policy import Effect, Policy, Rule
from sidecar.xks.responses import EkmNode, EncryptResponse, HealthStatusResponse

METADATA = RequestMetadata(
    kms_request_id="4112f4d6-db54-4af4-ae30-c55a22a8dfae",
    kms_operation="Encrypt",
    aws_principal_arn="arn:aws:iam::123456789012:user/Alice",
    kms_key_arn="arn:aws:kms:us-east-2:123456789012:key/1234abcd",
)
OPEN = Policy()
AAD = b"project=nile,department=marketing"
PLAINTEXT = b"Hello World!"


@dataclass
class FakeKey:
    versions: dict[int, bytes]
    usages: frozenset[str]
    enabled: bool = True
    spec: str = "AES_256"


@dataclass
class FakeKeyManager:
    """AES-GCM in memory, enforcing state and usage the way an HSM does."""

    keys: dict[str, FakeKey] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    rotations_before_encrypt: int = 0
    broken_tag: bool = False
    short_ciphertext: bool = False

    def add(
        self,
        key_id: str,
        usages: Iterable[str] = ("ENCRYPT", "DECRYPT"),
        *,
        enabled: bool = True,
        spec: str = "AES_256",
    ) -> None:
        key = AESGCM.generate_key(bit_length=256)
        self.keys[key_id] = FakeKey({1: key}, frozenset(usages), enabled, spec)

    def rotate(self, key_id: str) -> None:
        versions = self.keys[key_id].versions
        versions[max(versions) + 1] = AESGCM.generate_key(bit_length=256)

    def _key(self, key_id: str, usage: str) -> FakeKey:
        key = self.keys.get(key_id)
        if key is None:
            raise KeyNotFoundException()
        if not key.enabled:
            raise InvalidStateException()
        if usage not in key.usages:
            raise InvalidKeyUsageException()
        return key

    async def describe_key(self, key_id: str) -> KeyDescription:
        self.calls.append("describe")
        key = self.keys.get(key_id)
        if key is None:
            raise KeyNotFoundException()
        return KeyDescription(key.spec, key.usages, key.enabled, max(key.versions))

    async def encrypt(self, key_id: str, plaintext: bytes, hsm_aad: bytes) -> GcmResult:
        self.calls.append("encrypt")
        if self.rotations_before_encrypt:
            self.rotations_before_encrypt -= 1
            self.rotate(key_id)
        key = self._key(key_id, "ENCRYPT")
        version = max(key.versions)
        iv = os.urandom(12)
        sealed = AESGCM(key.versions[version]).encrypt(iv, plaintext, hsm_aad)
        ciphertext, tag = sealed[:-16], sealed[-16:]
        if self.broken_tag:
            tag = bytes(16)
        if self.short_ciphertext:
            ciphertext = ciphertext[:-1]
        return GcmResult(version, iv, ciphertext, tag)

    async def decrypt(
        self,
        key_id: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        hsm_aad: bytes,
    ) -> bytes:
        self.calls.append("decrypt")
        material = self._key(key_id, "DECRYPT").versions.get(key_version)
        if material is None:
            raise InvalidCiphertextException()
        try:
            return AESGCM(material).decrypt(iv, ciphertext + tag, hsm_aad)
        except InvalidTag as exc:
            raise InvalidCiphertextException() from exc


def _backend() -> FakeKeyManager:
    backend = FakeKeyManager()
    backend.add("foo")
    backend.add("encrypt_only_key", ["ENCRYPT"])
    backend.add("decrypt_only_key", ["DECRYPT"])
    backend.add("impotent_key", [])
    backend.add("disabled_key", enabled=False)
    backend.add("hmac_key", ["ENCRYPT", "DECRYPT"], spec="HMAC_256")
    return backend


def _encrypt_request(
    plaintext: bytes = PLAINTEXT, aad: bytes = AAD, cdiv: bool = False
) -> EncryptRequest:
    return EncryptRequest(METADATA, plaintext, aad, "SHA_256" if cdiv else None)


def _decrypt_request(response: EncryptResponse, aad: bytes = AAD) -> DecryptRequest:
    return DecryptRequest(
        METADATA,
        response.ciphertext,
        response.ciphertext_metadata,
        aad,
        response.initialization_vector,
        response.authentication_tag,
    )


def _is_key_manager(backend: KeyManager) -> KeyManager:
    return backend  # mypy checks the fake against the Protocol here


# --- Encrypt and Decrypt -----------------------------------------------------------


async def test_encrypt_then_decrypt_returns_the_plaintext() -> None:
    backend = _is_key_manager(_backend())
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    assert len(encrypted.ciphertext) == len(PLAINTEXT)
    decrypted = await service.decrypt("foo", _decrypt_request(encrypted), OPEN, backend)
    assert decrypted.plaintext == PLAINTEXT


async def test_ciphertext_metadata_records_the_key_version() -> None:
    backend = _backend()
    backend.rotate("foo")
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    assert encrypted.ciphertext_metadata == encode_metadata(2)


async def test_old_ciphertexts_decrypt_after_rotation() -> None:
    backend = _backend()
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    backend.rotate("foo")
    decrypted = await service.decrypt("foo", _decrypt_request(encrypted), OPEN, backend)
    assert decrypted.plaintext == PLAINTEXT


async def test_rotation_racing_an_encrypt_is_retried_for_the_new_version() -> None:
    backend = _backend()
    backend.rotations_before_encrypt = 1
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    assert decode_metadata(encrypted.ciphertext_metadata).key_version == 2
    assert backend.calls.count("encrypt") == 2
    decrypted = await service.decrypt("foo", _decrypt_request(encrypted), OPEN, backend)
    assert decrypted.plaintext == PLAINTEXT


async def test_a_key_version_that_keeps_moving_is_an_internal_error() -> None:
    backend = _backend()
    backend.rotations_before_encrypt = 5
    with pytest.raises(InternalException):
        await service.encrypt("foo", _encrypt_request(), OPEN, backend)


async def test_encrypt_without_cdiv_returns_none_and_does_not_decrypt() -> None:
    backend = _backend()
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    assert encrypted.ciphertext_data_integrity_value is None
    assert backend.calls == ["describe", "encrypt"]


async def test_cdiv_covers_the_response_fields_in_spec_order() -> None:
    backend = _backend()
    request = _encrypt_request(cdiv=True)
    encrypted = await service.encrypt("foo", request, OPEN, backend)
    assert encrypted.ciphertext_metadata is not None
    digest = hashlib.sha256(
        AAD
        + encrypted.ciphertext_metadata
        + encrypted.initialization_vector
        + encrypted.ciphertext
        + encrypted.authentication_tag
    ).digest()
    assert (
        encrypted.ciphertext_data_integrity_value == base64.b64encode(digest).decode()
    )


async def test_cdiv_is_computed_before_the_verifying_decrypt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = _backend()

    def recording_cdiv(*parts: bytes) -> str:
        backend.calls.append("cdiv")
        return real_cdiv(*parts)

    monkeypatch.setattr(service, "cdiv", recording_cdiv)
    await service.encrypt("foo", _encrypt_request(cdiv=True), OPEN, backend)
    assert backend.calls == ["describe", "encrypt", "cdiv", "decrypt"]


async def test_cdiv_with_a_key_that_cannot_decrypt_fails_before_any_crypto() -> None:
    backend = _backend()
    with pytest.raises(InvalidKeyUsageException, match="DECRYPT"):
        await service.encrypt(
            "encrypt_only_key", _encrypt_request(cdiv=True), OPEN, backend
        )
    assert backend.calls == ["describe"]


async def test_encrypt_only_key_encrypts_without_cdiv() -> None:
    backend = _backend()
    request = _encrypt_request()
    assert await service.encrypt("encrypt_only_key", request, OPEN, backend)


async def test_failed_verifying_decrypt_is_an_internal_error() -> None:
    backend = _backend()
    backend.broken_tag = True
    with pytest.raises(InternalException):
        await service.encrypt("foo", _encrypt_request(cdiv=True), OPEN, backend)


async def test_malformed_backend_output_is_an_internal_error() -> None:
    backend = _backend()
    backend.short_ciphertext = True
    with pytest.raises(InternalException):
        await service.encrypt("foo", _encrypt_request(), OPEN, backend)


@pytest.mark.parametrize(
    ("key_id", "error"),
    [
        ("decrypt_only_key", InvalidKeyUsageException),
        ("impotent_key", InvalidKeyUsageException),
        ("hmac_key", InvalidKeyUsageException),
        ("disabled_key", InvalidStateException),
        ("missing", KeyNotFoundException),
    ],
)
async def test_unusable_keys_cannot_encrypt_and_cost_no_crypto(
    key_id: str, error: type[Exception]
) -> None:
    backend = _backend()
    with pytest.raises(error):
        await service.encrypt(key_id, _encrypt_request(), OPEN, backend)
    assert backend.calls == ["describe"]


@pytest.mark.parametrize(
    ("key_id", "error"),
    [
        ("encrypt_only_key", InvalidKeyUsageException),
        ("impotent_key", InvalidKeyUsageException),
        ("disabled_key", InvalidStateException),
    ],
)
async def test_unusable_keys_cannot_decrypt_and_cost_no_crypto(
    key_id: str, error: type[Exception]
) -> None:
    backend = _backend()
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    backend.calls.clear()
    with pytest.raises(error):
        await service.decrypt(key_id, _decrypt_request(encrypted), OPEN, backend)
    assert backend.calls == ["describe"]


async def test_decrypt_with_other_aad_is_an_invalid_ciphertext() -> None:
    backend = _backend()
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    request = _decrypt_request(encrypted, aad=b"project=nile")
    with pytest.raises(InvalidCiphertextException):
        await service.decrypt("foo", request, OPEN, backend)


@pytest.mark.parametrize(
    "metadata",
    [None, b"", encode_metadata(2), b"\x02\x00\x00\x00\x01", encode_metadata(1) + b"x"],
)
async def test_decrypt_with_missing_or_altered_metadata_is_an_invalid_ciphertext(
    metadata: bytes | None,
) -> None:
    backend = _backend()
    encrypted = await service.encrypt("foo", _encrypt_request(), OPEN, backend)
    assert encrypted.ciphertext_metadata == encode_metadata(1)
    good = _decrypt_request(encrypted)
    request = DecryptRequest(
        METADATA,
        good.ciphertext,
        metadata,
        AAD,
        good.initialization_vector,
        good.authentication_tag,
    )
    with pytest.raises(InvalidCiphertextException):
        await service.decrypt("foo", request, OPEN, backend)


async def test_metadata_moved_into_the_aad_does_not_decrypt() -> None:
    # The spec's NOTE under Encrypt: encrypt without AAD, then decrypt passing
    # the returned ciphertextMetadata as the AAD and no metadata.
    backend = _backend()
    encrypted = await service.encrypt("foo", _encrypt_request(aad=b""), OPEN, backend)
    assert encrypted.ciphertext_metadata is not None
    request = _decrypt_request(encrypted, aad=encrypted.ciphertext_metadata)
    with pytest.raises(InvalidCiphertextException):
        await service.decrypt("foo", request, OPEN, backend)


async def test_spec_maximum_sizes_round_trip() -> None:
    backend = _backend()
    request = _encrypt_request(b"p" * 4300, b"a" * 8192, cdiv=True)
    encrypted = await service.encrypt("foo", request, OPEN, backend)
    decrypt = _decrypt_request(encrypted, aad=b"a" * 8192)
    assert (await service.decrypt("foo", decrypt, OPEN, backend)).plaintext == (
        b"p" * 4300
    )


# --- GetKeyMetadata, policy, health -------------------------------------------------


async def test_key_metadata_reports_spec_usages_and_status() -> None:
    backend = _backend()
    request = GetKeyMetadataRequest(METADATA)
    response = await service.get_key_metadata("foo", request, OPEN, backend)
    assert (response.key_spec, response.key_usage, response.key_status) == (
        "AES_256",
        ("ENCRYPT", "DECRYPT"),
        "ENABLED",
    )
    disabled = await service.get_key_metadata("disabled_key", request, OPEN, backend)
    assert disabled.key_status == "DISABLED"


async def test_key_metadata_keeps_encrypt_and_decrypt_within_ten_usages() -> None:
    backend = _backend()
    backend.add("busy", [f"USAGE{i}" for i in range(12)] + ["DECRYPT", "ENCRYPT"])
    request = GetKeyMetadataRequest(METADATA)
    response = await service.get_key_metadata("busy", request, OPEN, backend)
    assert len(response.key_usage) == 10
    assert response.key_usage[:2] == ("ENCRYPT", "DECRYPT")


async def test_policy_denial_comes_before_the_backend() -> None:
    backend = _backend()
    deny = Policy((Rule.create("nobody", Effect.DENY),))
    with pytest.raises(AccessDeniedException):
        await service.encrypt("foo", _encrypt_request(), deny, backend)
    with pytest.raises(AccessDeniedException):
        await service.get_key_metadata(
            "foo", GetKeyMetadataRequest(METADATA), deny, backend
        )
    assert backend.calls == []


async def test_health_returns_the_report() -> None:
    report = HealthStatusResponse(
        1, "Futurex", "XKS sidecar", "Futurex", (EkmNode("n1", "CryptoHub", "ACTIVE"),)
    )

    async def reporter() -> HealthStatusResponse:
        return report

    request = GetHealthStatusRequest(
        RequestMetadata(kms_request_id="r", kms_operation="KmsHealthCheck")
    )
    assert await service.get_health_status(request, reporter) is report
