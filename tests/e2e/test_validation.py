"""ValidationException for every malformed request body, per API.

Spec, "Error codes": 400 ValidationException when "one or more input
parameters is invalid". Required fields are those each API section marks
REQUIRED; IV is 12 or 16 bytes, the tag 16, ciphertextMetadata at most 20,
encryptionAlgorithm ``AES_GCM``, the CDIV algorithm ``SHA_256``. The spec's
table excludes GetHealthStatus from ValidationException, yet a health body
without its required requestMetadata has no other fitting error; this proxy
answers ValidationException there too (docs/xks-core.md).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.e2e.bodies import (
    Json,
    b64,
    decrypt_body,
    encrypt_body,
    health_body,
    metadata_body,
    to_json,
)
from tests.e2e.http_wire import Reply, expect_error, expect_ok
from tests.e2e.stack import Stack
from tests.e2e.xks_client import open_client

DROP = object()


def changed(doc: Json, path: str, value: Any) -> Json:
    """A copy of ``doc`` with the field at dotted ``path`` set, or dropped."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = out
    for name in parents:
        target = target[name]
    if value is DROP:
        del target[last]
    else:
        target[last] = value
    return out


async def _post(stack: Stack, operation: str, doc: Json | bytes) -> Reply:
    key_id = None if operation == "health" else "foo"
    async with open_client(stack) as xks:
        if isinstance(doc, bytes):
            return await xks.send("POST", xks.path(operation, key_id), doc)
        return await xks.post(xks.path(operation, key_id), doc)


# --- GetHealthStatus ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("requestMetadata", DROP),
        ("requestMetadata", {}),
        ("requestMetadata", "metadata"),
        ("requestMetadata.kmsRequestId", DROP),
        ("requestMetadata.kmsOperation", DROP),
        ("requestMetadata.kmsRequestId", ""),
        ("requestMetadata.kmsRequestId", 42),
        ("requestMetadata.kmsOperation", ["KmsHealthCheck"]),
    ],
)
async def test_health_request_with_bad_metadata_is_a_validation_error(
    stack: Stack, path: str, value: Any
) -> None:
    reply = await _post(stack, "health", changed(health_body(), path, value))

    expect_error(reply, 400, "ValidationException")


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"requestMetadata":'])
async def test_body_that_is_not_a_json_object_is_a_validation_error(
    stack: Stack, body: bytes
) -> None:
    reply = await _post(stack, "health", body)

    expect_error(reply, 400, "ValidationException")


# --- GetKeyMetadata -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("requestMetadata", DROP),
        ("requestMetadata", {}),
        ("requestMetadata.awsPrincipalArn", DROP),
        ("requestMetadata.kmsOperation", DROP),
        ("requestMetadata.kmsRequestId", DROP),
        ("requestMetadata.awsPrincipalArn", ""),
        ("requestMetadata.awsPrincipalArn", 7),
        ("requestMetadata.kmsOperation", None),
    ],
)
async def test_metadata_request_with_bad_metadata_is_a_validation_error(
    stack: Stack, path: str, value: Any
) -> None:
    reply = await _post(stack, "metadata", changed(metadata_body(), path, value))

    expect_error(reply, 400, "ValidationException")


# --- Encrypt --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("requestMetadata", DROP),
        ("requestMetadata", {}),
        ("requestMetadata.awsPrincipalArn", DROP),
        ("requestMetadata.kmsKeyArn", DROP),
        ("requestMetadata.kmsOperation", DROP),
        ("requestMetadata.kmsRequestId", DROP),
        ("requestMetadata.kmsKeyArn", 1),
        ("plaintext", DROP),
        ("plaintext", 123),
        ("plaintext", "not base64!"),
        ("plaintext", "SGVsbG8"),  # padding missing
        ("plaintext", "SGVsbG8=\n"),
        ("plaintext", "SGVs-G8_"),  # URL-safe alphabet, not standard Base64
        ("additionalAuthenticatedData", 5),
        ("additionalAuthenticatedData", "@@@@"),
        ("encryptionAlgorithm", DROP),
        ("encryptionAlgorithm", "AES_CBC"),
        ("encryptionAlgorithm", "aes_gcm"),
        ("encryptionAlgorithm", 1),
        ("ciphertextDataIntegrityValueAlgorithm", "SHA_512"),
        ("ciphertextDataIntegrityValueAlgorithm", True),
    ],
)
async def test_encrypt_request_with_a_bad_field_is_a_validation_error(
    stack: Stack, path: str, value: Any
) -> None:
    doc = changed(encrypt_body(b"valid", aad=b"aad"), path, value)

    reply = await _post(stack, "encrypt", doc)

    expect_error(reply, 400, "ValidationException")


async def test_empty_plaintext_is_a_validation_error(stack: Stack) -> None:
    # The spec marks plaintext REQUIRED and never defines an empty one (KMS's
    # own Encrypt needs at least one byte); this proxy reads "" as missing.
    reply = await _post(stack, "encrypt", encrypt_body(b""))

    expect_error(reply, 400, "ValidationException")


# --- Decrypt --------------------------------------------------------------------


@pytest.fixture
async def decrypt_doc(stack: Stack) -> Json:
    """A valid Decrypt body for key foo, with AAD."""
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"valid", aad=b"aad"))
    return decrypt_body(encrypted, aad=b"aad")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("requestMetadata", DROP),
        ("requestMetadata.awsPrincipalArn", DROP),
        ("requestMetadata.kmsKeyArn", DROP),
        ("requestMetadata.kmsOperation", DROP),
        ("requestMetadata.kmsRequestId", DROP),
        ("ciphertext", DROP),
        ("ciphertext", ""),
        ("ciphertext", "%%%%"),
        ("initializationVector", DROP),
        ("initializationVector", b64(bytes(8))),
        ("initializationVector", b64(bytes(13))),
        ("initializationVector", b64(bytes(17))),
        ("initializationVector", 12),
        ("authenticationTag", DROP),
        ("authenticationTag", b64(bytes(12))),
        ("authenticationTag", b64(bytes(15))),
        ("authenticationTag", b64(bytes(17))),
        ("authenticationTag", "not base64"),
        ("ciphertextMetadata", b64(bytes(21))),
        ("ciphertextMetadata", "===="),
        ("encryptionAlgorithm", DROP),
        ("encryptionAlgorithm", "AES_GCM_256"),
        ("additionalAuthenticatedData", "a"),
    ],
)
async def test_decrypt_request_with_a_bad_field_is_a_validation_error(
    stack: Stack, decrypt_doc: Json, path: str, value: Any
) -> None:
    reply = await _post(stack, "decrypt", changed(decrypt_doc, path, value))

    expect_error(reply, 400, "ValidationException")


async def test_sixteen_byte_iv_passes_validation(
    stack: Stack, decrypt_doc: Json
) -> None:
    # 12 or 16 bytes are both valid (Decrypt); a wrong 16-byte IV fails only
    # the authentication, which is InvalidCiphertextException.
    doc = changed(decrypt_doc, "initializationVector", b64(bytes(16)))

    reply = await _post(stack, "decrypt", doc)

    expect_error(reply, 400, "InvalidCiphertextException")


async def test_duplicate_json_key_is_a_validation_error(stack: Stack) -> None:
    body = to_json(encrypt_body(b"one"))[:-1] + b',"plaintext":"dHdv"}'

    reply = await _post(stack, "encrypt", body)

    expect_error(reply, 400, "ValidationException")
