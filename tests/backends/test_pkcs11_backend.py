"""The PKCS#11 backend against a real SoftHSMv2 token: crypto, keys, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pkcs11 import KeyType

from sidecar.backends import Backend
from sidecar.backends.base import DECRYPT, ENCRYPT
from sidecar.backends.pkcs11 import (
    KeyIdAttribute,
    Pkcs11Backend,
    open_pkcs11_backend,
)
from sidecar.backends.pkcs11.keyadmin import KeyAdmin
from sidecar.xks import service
from sidecar.xks.envelope import encode_metadata, hsm_aad
from sidecar.xks.errors import (
    InvalidCiphertextException,
    InvalidKeyUsageException,
    InvalidStateException,
    KeyNotFoundException,
)
from sidecar.xks.messages import DecryptRequest, EncryptRequest, RequestMetadata
from sidecar.xks.policy import Policy
from tests.backends.softhsm import SoftHsm, administer, make_template, make_token

AAD = hsm_aad(b"project=nile", encode_metadata(1))
PLAINTEXT = b"Hello World!"
METADATA = RequestMetadata(
    kms_request_id="4112f4d6-db54-4af4-ae30-c55a22a8dfae",
    kms_operation="Encrypt",
    aws_principal_arn="arn:aws:iam::123456789012:user/Alice",
    kms_key_arn="arn:aws:kms:us-east-2:123456789012:key/1234abcd",
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> SoftHsm:
    return make_token(tmp_path, monkeypatch, copy_of=template)


@pytest.fixture
async def backend(hsm: SoftHsm) -> AsyncIterator[Pkcs11Backend]:
    # No describe cache, so each test sees the token's state at once; a
    # generous deadline, since these tests are about results, not timing.
    settings = hsm.settings(describe_cache_ttl_s=0, call_timeout_s=5.0)
    async with open_pkcs11_backend(settings) as opened:
        yield opened


def _is_backend(backend: Pkcs11Backend) -> Backend:
    return backend  # mypy checks it against the registry's Protocol here


# --- encryption and decryption ---------------------------------------------


async def test_round_trip_gives_back_the_plaintext(backend: Pkcs11Backend) -> None:
    result = await backend.encrypt("foo", PLAINTEXT, AAD)

    assert (len(result.iv), len(result.tag)) == (12, 16)
    assert len(result.ciphertext) == len(PLAINTEXT)
    assert result.ciphertext != PLAINTEXT
    opened = await backend.decrypt(
        "foo", result.key_version, result.iv, result.ciphertext, result.tag, AAD
    )
    assert opened == PLAINTEXT


async def test_every_encryption_draws_a_new_iv(backend: Pkcs11Backend) -> None:
    ivs = {(await backend.encrypt("foo", PLAINTEXT, AAD)).iv for _ in range(20)}

    assert len(ivs) == 20


async def test_empty_plaintext_round_trips(backend: Pkcs11Backend) -> None:
    result = await backend.encrypt("foo", b"", AAD)

    assert result.ciphertext == b""
    opened = await backend.decrypt("foo", 1, result.iv, b"", result.tag, AAD)
    assert opened == b""


@pytest.mark.parametrize("part", ["aad", "ciphertext", "tag", "iv"])
async def test_any_altered_input_is_an_invalid_ciphertext(
    backend: Pkcs11Backend, part: str
) -> None:
    result = await backend.encrypt("foo", PLAINTEXT, AAD)
    inputs = {
        "aad": AAD,
        "ciphertext": result.ciphertext,
        "tag": result.tag,
        "iv": result.iv,
    }
    inputs[part] = bytes([inputs[part][0] ^ 1]) + inputs[part][1:]

    with pytest.raises(InvalidCiphertextException) as caught:
        await backend.decrypt(
            "foo", 1, inputs["iv"], inputs["ciphertext"], inputs["tag"], inputs["aad"]
        )
    assert caught.value.reason == "GCM decryption failed"  # says nothing more


async def test_ciphertext_of_another_key_is_an_invalid_ciphertext(
    backend: Pkcs11Backend,
) -> None:
    result = await backend.encrypt("xks-health-check", PLAINTEXT, AAD)

    with pytest.raises(InvalidCiphertextException):
        await backend.decrypt("foo", 1, result.iv, result.ciphertext, result.tag, AAD)


async def test_a_16_byte_iv_cannot_be_ours(backend: Pkcs11Backend) -> None:
    result = await backend.encrypt("foo", PLAINTEXT, AAD)

    with pytest.raises(InvalidCiphertextException):
        await backend.decrypt(
            "foo", 1, result.iv + bytes(4), result.ciphertext, result.tag, AAD
        )


async def test_the_largest_spec_payload_round_trips(backend: Pkcs11Backend) -> None:
    # Spec, Encrypt: at least 4300 bytes of plaintext and 8192 of AAD.
    plaintext, aad = bytes(range(256)) * 17, hsm_aad(b"a" * 8192, encode_metadata(1))
    result = await backend.encrypt("foo", plaintext[:4300], aad)

    opened = await backend.decrypt(
        "foo", 1, result.iv, result.ciphertext, result.tag, aad
    )
    assert opened == plaintext[:4300]


# --- keys that are missing or may not do the job ---------------------------


async def test_an_unknown_key_is_not_found(backend: Pkcs11Backend) -> None:
    with pytest.raises(KeyNotFoundException):
        await backend.describe_key("no-such-key")
    with pytest.raises(KeyNotFoundException):
        await backend.encrypt("no-such-key", PLAINTEXT, AAD)
    with pytest.raises(KeyNotFoundException):
        await backend.decrypt("no-such-key", 1, bytes(12), b"x", bytes(16), AAD)


async def test_a_version_label_is_not_an_external_key_id(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    administer(hsm, lambda admin: admin.rotate("foo"))  # foo#v2 is on the token

    with pytest.raises(KeyNotFoundException):
        await backend.describe_key("foo#v2")


async def test_an_unknown_key_version_is_an_invalid_ciphertext(
    backend: Pkcs11Backend,
) -> None:
    result = await backend.encrypt("foo", PLAINTEXT, AAD)

    for version in (0, 2, 7):
        with pytest.raises(InvalidCiphertextException):
            await backend.decrypt(
                "foo", version, result.iv, result.ciphertext, result.tag, AAD
            )


async def test_keys_without_the_usage_refuse_it(backend: Pkcs11Backend) -> None:
    sealed = await backend.encrypt("encrypt_only_key", PLAINTEXT, AAD)

    with pytest.raises(InvalidKeyUsageException):
        await backend.decrypt(
            "encrypt_only_key", 1, sealed.iv, sealed.ciphertext, sealed.tag, AAD
        )
    with pytest.raises(InvalidKeyUsageException):
        await backend.encrypt("decrypt_only_key", PLAINTEXT, AAD)
    with pytest.raises(InvalidKeyUsageException):
        await backend.encrypt("impotent_key", PLAINTEXT, AAD)


async def test_errors_keep_the_pkcs11_failure_as_their_cause(
    backend: Pkcs11Backend,
) -> None:
    result = await backend.encrypt("foo", PLAINTEXT, AAD)

    with pytest.raises(InvalidCiphertextException) as caught:
        await backend.decrypt("foo", 1, result.iv, result.ciphertext, bytes(16), AAD)
    assert caught.value.__cause__ is not None


# --- describe_key from the token's attributes ------------------------------


async def test_describe_reports_each_keys_own_attributes(
    backend: Pkcs11Backend,
) -> None:
    expected = {
        "foo": {ENCRYPT, DECRYPT},
        "encrypt_only_key": {ENCRYPT},
        "decrypt_only_key": {DECRYPT},
        "impotent_key": set(),
    }
    for key_id, usages in expected.items():
        description = await backend.describe_key(key_id)
        assert description.usages == usages, key_id
        assert description.key_spec == "AES_256"
        assert description.enabled
        assert description.current_version == 1


async def test_describe_follows_usage_changes_made_on_the_token(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    administer(
        hsm, lambda admin: admin.set_usages("foo", frozenset({"WRAP", "UNWRAP"}))
    )

    description = await backend.describe_key("foo")

    assert description.usages == {"WRAP", "UNWRAP"}


async def test_describe_reports_the_real_key_length(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    def create_aes_128(admin: KeyAdmin) -> None:
        # An operator's own 128-bit key, made with the vendor's tools.
        admin.session.generate_key(KeyType.AES, 128, label="short-key", store=True)

    administer(hsm, create_aes_128)

    assert (await backend.describe_key("short-key")).key_spec == "AES_128"


# --- disabled keys -----------------------------------------------------------


async def test_a_disabled_key_is_described_disabled_and_refuses_crypto(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    sealed = await backend.encrypt("foo", PLAINTEXT, AAD)
    administer(hsm, lambda admin: admin.set_enabled("foo", False))

    assert not (await backend.describe_key("foo")).enabled
    with pytest.raises(InvalidStateException):
        await backend.encrypt("foo", PLAINTEXT, AAD)
    with pytest.raises(InvalidStateException):
        await backend.decrypt("foo", 1, sealed.iv, sealed.ciphertext, sealed.tag, AAD)


async def test_an_enabled_key_works_again(hsm: SoftHsm, backend: Pkcs11Backend) -> None:
    administer(hsm, lambda admin: admin.set_enabled("foo", False))
    administer(hsm, lambda admin: admin.set_enabled("foo", True))

    assert (await backend.describe_key("foo")).enabled
    await backend.encrypt("foo", PLAINTEXT, AAD)


# --- key versions ------------------------------------------------------------


async def test_rotation_moves_encryption_to_the_new_version(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    old = await backend.encrypt("foo", PLAINTEXT, AAD)
    administer(hsm, lambda admin: admin.rotate("foo"))

    new = await backend.encrypt("foo", PLAINTEXT, AAD)

    assert (old.key_version, new.key_version) == (1, 2)
    assert (await backend.describe_key("foo")).current_version == 2
    for sealed in (old, new):
        opened = await backend.decrypt(
            "foo", sealed.key_version, sealed.iv, sealed.ciphertext, sealed.tag, AAD
        )
        assert opened == PLAINTEXT


async def test_a_ciphertext_claimed_for_another_version_does_not_decrypt(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    old = await backend.encrypt("foo", PLAINTEXT, AAD)
    administer(hsm, lambda admin: admin.rotate("foo"))

    with pytest.raises(InvalidCiphertextException):
        await backend.decrypt("foo", 2, old.iv, old.ciphertext, old.tag, AAD)


async def test_the_service_records_the_version_and_decrypts_with_it(
    hsm: SoftHsm, backend: Pkcs11Backend
) -> None:
    policy, aad = Policy(), b"project=nile"
    before = await service.encrypt(
        "foo", EncryptRequest(METADATA, PLAINTEXT, aad, "SHA_256"), policy, backend
    )
    for _ in range(3):
        administer(hsm, lambda admin: admin.rotate("foo"))
    after = await service.encrypt(
        "foo", EncryptRequest(METADATA, PLAINTEXT, aad, None), policy, backend
    )

    assert before.ciphertext_metadata == encode_metadata(1)
    assert after.ciphertext_metadata == encode_metadata(4)
    for response in (before, after):
        request = DecryptRequest(
            METADATA,
            response.ciphertext,
            response.ciphertext_metadata,
            aad,
            response.initialization_vector,
            response.authentication_tag,
        )
        decrypted = await service.decrypt("foo", request, policy, backend)
        assert decrypted.plaintext == PLAINTEXT


async def test_keys_can_be_found_by_cka_id_instead_of_label(
    hsm: SoftHsm,
) -> None:
    # The admin tool writes the version label into CKA_ID too.
    administer(hsm, lambda admin: admin.rotate("foo"))
    settings = hsm.settings(key_id_attribute=KeyIdAttribute.ID, call_timeout_s=5.0)
    async with open_pkcs11_backend(settings) as backend:
        sealed = await backend.encrypt("foo", PLAINTEXT, AAD)
        opened = await backend.decrypt(
            "foo", sealed.key_version, sealed.iv, sealed.ciphertext, sealed.tag, AAD
        )

    assert (sealed.key_version, opened) == (2, PLAINTEXT)
