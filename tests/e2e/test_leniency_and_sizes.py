"""What the proxy MUST accept (spec, "API operations", Appendix B).

* Unknown fields: KMS "may choose to include additional fields" (Appendix B).
* Unknown kmsOperation: "The XKS Proxy MUST NOT reject a request as invalid
  if it sees a kmsOperation other than those listed".
* kmsRequestId: "MUST treat this as an opaque string and MUST NOT perform
  any validation on its structure".
* ARNs "of up to 2048 characters" MUST be supported.
* Sizes: up to 4300 bytes of plaintext/ciphertext and 8192 bytes of AAD.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.bodies import (
    Json,
    b64,
    decrypt_body,
    encrypt_body,
    health_body,
    metadata_body,
    request_metadata,
    unb64,
)
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.stack import Stack
from tests.e2e.xks_client import XksClient, open_client


async def _all_four(xks: XksClient, extra: Json, operation: str) -> list[int]:
    """Status of each API with ``extra`` merged into body and requestMetadata."""

    def widen(doc: Json) -> Json:
        metadata = {**doc["requestMetadata"], **extra}
        metadata["kmsOperation"] = operation
        return {**doc, **extra, "requestMetadata": metadata}

    encrypted = expect_ok(await xks.encrypt("foo", b"lenient"))
    docs = {
        xks.path("health"): health_body(),
        xks.path("metadata", "foo"): metadata_body(),
        xks.path("encrypt", "foo"): encrypt_body(b"lenient"),
        xks.path("decrypt", "foo"): decrypt_body(encrypted),
    }
    return [(await xks.post(path, widen(doc))).status for path, doc in docs.items()]


async def test_unknown_fields_are_ignored_by_every_api(stack: Stack) -> None:
    extra = {"someFutureField": "x", "kmsRecipientAttestationPCR0": {"a": [1, 2]}}

    async with open_client(stack) as xks:
        statuses = await _all_four(xks, extra, "Encrypt")

    assert statuses == [200, 200, 200, 200]


async def test_unknown_kms_operation_is_accepted_by_every_api(stack: Stack) -> None:
    async with open_client(stack) as xks:
        statuses = await _all_four(xks, {}, "BulkEncryptFromTheFuture")

    assert statuses == [200, 200, 200, 200]


@pytest.mark.parametrize(
    "request_id",
    ["x", "not-a-uuid", 'spaces / slashes {"json"} \\ and ;', "ünïcode-✓", "9" * 300],
)
async def test_kms_request_id_is_opaque(stack: Stack, request_id: str) -> None:
    async with open_client(stack) as xks:
        health = await xks.health(health_body(request_id))
        encrypt = await xks.encrypt(
            "foo", b"opaque", metadata=request_metadata(request_id=request_id)
        )

    expect_ok(health)
    expect_ok(encrypt)


async def test_arns_of_2048_characters_are_accepted(stack: Stack) -> None:
    principal = "arn:aws:iam::111122223333:role/" + "p" * (2048 - 31)
    key_arn = "arn:aws:kms:us-east-1:111122223333:key/" + "k" * (2048 - 39)
    assert len(principal) == len(key_arn) == 2048
    metadata = request_metadata(principal=principal, key_arn=key_arn)

    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"arn", metadata=metadata))
        decrypted = expect_ok(await xks.decrypt("foo", encrypted, metadata=metadata))
        described = expect_ok(
            await xks.metadata("foo", metadata_body(principal=principal))
        )

    assert unb64(decrypted["plaintext"]) == b"arn"
    assert described["keySpec"] == "AES_256"


async def test_4300_byte_plaintext_with_8192_byte_aad_round_trips(stack: Stack) -> None:
    plaintext, aad = os.urandom(4300), os.urandom(8192)

    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", plaintext, aad=aad))
        decrypted = expect_ok(await xks.decrypt("foo", encrypted, aad=aad))

    # AES-GCM is a stream cipher: "the length of the ciphertext MUST be the
    # same as the length of the plaintext" (Encrypt).
    assert len(unb64(encrypted["ciphertext"])) == 4300
    assert len(b64(plaintext)) == 5736  # the spec's figure for the encoding
    assert unb64(decrypted["plaintext"]) == plaintext


@pytest.mark.parametrize("size", [1, 16, 4299])
async def test_plaintext_sizes_below_the_maximum_round_trip(
    stack: Stack, size: int
) -> None:
    plaintext = os.urandom(size)

    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", plaintext))
        decrypted = expect_ok(await xks.decrypt("foo", encrypted))

    assert unb64(decrypted["plaintext"]) == plaintext


async def test_plaintext_beyond_the_spec_minimum_is_served_or_unsupported(
    stack: Stack,
) -> None:
    # Error codes: beyond the sizes the spec requires, a proxy may answer
    # UnsupportedOperationException (501) "if a parameter value exceeded the
    # maximum size that is currently supported"; anything else must work.
    plaintext = os.urandom(20000)

    async with open_client(stack) as xks:
        reply = await xks.encrypt("foo", plaintext)
        if reply.status == 200:
            decrypted = expect_ok(await xks.decrypt("foo", reply.json()))
            assert unb64(decrypted["plaintext"]) == plaintext
            return

    expect_error(reply, 501, "UnsupportedOperationException")
