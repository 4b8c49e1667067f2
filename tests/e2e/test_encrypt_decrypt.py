"""Encrypt and Decrypt semantics on the seeded keys (spec, Encrypt, Decrypt).

Round trips, the CDIV recomputed here per Appendix C, ciphertextMetadata
integrity (the NOTE under Encrypt's ciphertextMetadata), and each
InvalidCiphertextException case: "the specified ciphertext, initialization
vector, additional authenticated data or authentication tag is corrupted,
missing, or otherwise invalid" (Error codes).
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from tests.e2e.bodies import Json, b64, decrypt_body, unb64
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.stack import Stack
from tests.e2e.xks_client import open_client


def flip(field_b64: str, index: int = 0) -> str:
    """The same Base64 field with one bit changed."""
    raw = bytearray(unb64(field_b64))
    raw[index] ^= 0x01
    return b64(bytes(raw))


def appendix_c_cdiv(aad: bytes, response: Json) -> str:
    """Base64(SHA-256(AAD || ciphertextMetadata || IV || ciphertext || tag))."""
    parts = [aad] + [
        unb64(response[name]) if name in response else b""
        for name in (
            "ciphertextMetadata",
            "initializationVector",
            "ciphertext",
            "authenticationTag",
        )
    ]
    return base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()


def test_cdiv_recomputation_reproduces_the_appendix_c_example() -> None:
    # Checks this suite's own CDIV against the spec's worked example, so the
    # comparisons below rest on a known-good computation.
    response = {
        "ciphertextMetadata": "a2V5X3ZlcnNpb249MQ==",
        "initializationVector": "HMrlRw85cAJUd5Ax",
        "ciphertext": "ghxkK1txeDNn3q8Y",
        "authenticationTag": "vBxN2ncH1oEkR8WVXpmyYQ==",
    }

    value = appendix_c_cdiv(b"project=nile,department=marketing", response)

    assert value == "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="


async def test_round_trip_with_and_without_aad(stack: Stack) -> None:
    async with open_client(stack) as xks:
        with_aad = expect_ok(await xks.encrypt("foo", b"Hello World!", aad=b"ctx"))
        without = expect_ok(await xks.encrypt("foo", b"Hello World!"))
        back_with = expect_ok(await xks.decrypt("foo", with_aad, aad=b"ctx"))
        back_without = expect_ok(await xks.decrypt("foo", without))

    assert unb64(back_with["plaintext"]) == b"Hello World!"
    assert unb64(back_without["plaintext"]) == b"Hello World!"
    assert set(back_with) == {"plaintext"}


async def test_encrypt_response_has_the_spec_fields_and_sizes(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"0123456789"))

    assert set(encrypted) <= {
        "ciphertext",
        "ciphertextMetadata",
        "initializationVector",
        "authenticationTag",
    }
    assert len(unb64(encrypted["ciphertext"])) == 10
    assert len(unb64(encrypted["initializationVector"])) in (12, 16)
    assert len(unb64(encrypted["authenticationTag"])) == 16
    assert 0 < len(unb64(encrypted["ciphertextMetadata"])) <= 20


async def test_each_encryption_draws_a_fresh_iv(stack: Stack) -> None:
    async with open_client(stack) as xks:
        ivs = [
            expect_ok(await xks.encrypt("foo", b"same"))["initializationVector"]
            for _ in range(5)
        ]

    assert len(set(ivs)) == 5


@pytest.mark.parametrize("aad", [None, b"", b"project=nile,department=marketing"])
async def test_cdiv_equals_the_appendix_c_hash_recomputed_here(
    stack: Stack, aad: bytes | None
) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(
            await xks.encrypt("foo", os.urandom(32), aad=aad, cdiv=True)
        )

    assert encrypted["ciphertextDataIntegrityValue"] == appendix_c_cdiv(
        aad or b"", encrypted
    )


async def test_cdiv_is_absent_unless_requested(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"no cdiv"))

    assert "ciphertextDataIntegrityValue" not in encrypted


@pytest.mark.parametrize(
    ("field", "index"),
    [
        ("ciphertext", 0),
        ("ciphertext", -1),
        ("initializationVector", 0),
        ("authenticationTag", 0),
        ("authenticationTag", 15),
        ("ciphertextMetadata", 0),
        ("ciphertextMetadata", -1),
    ],
)
async def test_tampered_field_is_invalid_ciphertext(
    stack: Stack, field: str, index: int
) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"tamper me", aad=b"a"))
        tampered = {**encrypted, field: flip(encrypted[field], index)}
        reply = await xks.decrypt("foo", tampered, aad=b"a")

    expect_error(reply, 400, "InvalidCiphertextException")


@pytest.mark.parametrize(
    ("encrypt_aad", "decrypt_aad"),
    [(b"aad", b"aaD"), (b"aad", None), (None, b"aad"), (b"aad", b"aad\x00")],
    ids=["changed", "dropped", "added", "extended"],
)
async def test_aad_mismatch_is_invalid_ciphertext(
    stack: Stack, encrypt_aad: bytes | None, decrypt_aad: bytes | None
) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"aad", aad=encrypt_aad))
        reply = await xks.decrypt("foo", encrypted, aad=decrypt_aad)

    expect_error(reply, 400, "InvalidCiphertextException")


async def test_missing_ciphertext_metadata_is_invalid_ciphertext(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"metadata"))
        del encrypted["ciphertextMetadata"]
        reply = await xks.decrypt("foo", encrypted)

    expect_error(reply, 400, "InvalidCiphertextException")


async def test_truncated_ciphertext_metadata_is_invalid_ciphertext(
    stack: Stack,
) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"metadata"))
        metadata = unb64(encrypted["ciphertextMetadata"])
        reply = await xks.decrypt(
            "foo", {**encrypted, "ciphertextMetadata": b64(metadata[:-1])}
        )

    expect_error(reply, 400, "InvalidCiphertextException")


async def test_metadata_moved_into_aad_is_invalid_ciphertext(stack: Stack) -> None:
    # The spec's own example for why lengths go into the HSM AAD: encrypt
    # without AAD, then pass the metadata as AAD and no metadata.
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"moved"))
        metadata = unb64(encrypted.pop("ciphertextMetadata"))
        reply = await xks.decrypt("foo", encrypted, aad=metadata)

    expect_error(reply, 400, "InvalidCiphertextException")


async def test_aad_moved_into_metadata_is_invalid_ciphertext(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"moved", aad=b"ab"))
        metadata = unb64(encrypted["ciphertextMetadata"])
        moved = {**encrypted, "ciphertextMetadata": b64(b"ab" + metadata)}
        reply = await xks.decrypt("foo", moved)

    expect_error(reply, 400, "InvalidCiphertextException")


async def test_ciphertext_of_one_key_is_invalid_under_another(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"foo's"))
        reply = await xks.decrypt("xks-health-check", encrypted)

    expect_error(reply, 400, "InvalidCiphertextException")


# --- InvalidKeyUsageException and KeyNotFoundException --------------------------


async def test_encrypt_with_a_decrypt_only_key_is_invalid_key_usage(
    stack: Stack,
) -> None:
    async with open_client(stack) as xks:
        reply = await xks.encrypt("decrypt_only_key", b"no")

    expect_error(reply, 400, "InvalidKeyUsageException")


async def test_encrypt_only_key_encrypts_but_cannot_decrypt(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("encrypt_only_key", b"one way"))
        reply = await xks.decrypt("encrypt_only_key", encrypted)

    expect_error(reply, 400, "InvalidKeyUsageException")


async def test_cdiv_encrypt_with_an_encrypt_only_key_is_invalid_key_usage(
    stack: Stack,
) -> None:
    # A CDIV promises a later decrypt succeeds (Encrypt, ciphertextDataIntegrity
    # Value); a key that cannot decrypt cannot keep that promise.
    async with open_client(stack) as xks:
        reply = await xks.encrypt("encrypt_only_key", b"cdiv", cdiv=True)

    expect_error(reply, 400, "InvalidKeyUsageException")


async def test_key_without_usages_neither_encrypts_nor_decrypts(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"impotent"))
        encrypt = await xks.encrypt("impotent_key", b"impotent")
        decrypt = await xks.decrypt("impotent_key", encrypted)

    expect_error(encrypt, 400, "InvalidKeyUsageException")
    expect_error(decrypt, 400, "InvalidKeyUsageException")


async def test_unknown_key_is_key_not_found_for_each_key_api(stack: Stack) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"lost"))
        replies = [
            await xks.metadata("no-such-key"),
            await xks.encrypt("no-such-key", b"lost"),
            await xks.post(xks.path("decrypt", "no-such-key"), decrypt_body(encrypted)),
        ]

    for reply in replies:
        expect_error(reply, 404, "KeyNotFoundException")


# --- GetKeyMetadata ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_id", "has", "lacks"),
    [
        ("foo", {"ENCRYPT", "DECRYPT"}, set()),
        ("encrypt_only_key", {"ENCRYPT"}, {"DECRYPT"}),
        ("decrypt_only_key", {"DECRYPT"}, {"ENCRYPT"}),
        ("impotent_key", set(), {"ENCRYPT", "DECRYPT"}),
    ],
)
async def test_key_metadata_reports_spec_usage_and_status(
    stack: Stack, key_id: str, has: set[str], lacks: set[str]
) -> None:
    async with open_client(stack) as xks:
        described = expect_ok(await xks.metadata(key_id))

    assert described["keySpec"] == "AES_256"
    assert described["keyStatus"] == "ENABLED"
    usages = described["keyUsage"]
    assert isinstance(usages, list)
    assert len(usages) <= 10
    assert has <= set(usages)
    assert not lacks & set(usages)
