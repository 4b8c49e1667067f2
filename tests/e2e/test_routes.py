"""URIs and methods (spec, "API operations").

Every API is a POST under a keystore's XksProxyUriPath; a GET on one of them
MUST get 405; an unknown or malformed path is 404 InvalidUriPathException
(Error codes). Key ids are at most 128 of ``[A-Za-z0-9._-]`` and a whole URI
at most 256 characters.
"""

from __future__ import annotations

import pytest

from tests.e2e.bodies import decrypt_body, encrypt_body, health_body, metadata_body
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.stack import Stack
from tests.e2e.xks_client import open_client

KEYSTORES = ["dev", "tenant-b"]


@pytest.mark.parametrize("keystore", KEYSTORES)
async def test_each_api_answers_post_under_each_keystore_prefix(
    stack: Stack, keystore: str
) -> None:
    async with open_client(stack, keystore) as xks:
        health = expect_ok(await xks.post(xks.path("health"), health_body()))
        metadata = expect_ok(
            await xks.post(xks.path("metadata", "foo"), metadata_body())
        )
        encrypted = expect_ok(
            await xks.post(xks.path("encrypt", "foo"), encrypt_body(b"route"))
        )
        decrypted = expect_ok(
            await xks.post(xks.path("decrypt", "foo"), decrypt_body(encrypted))
        )

    assert health["ekmFleetDetails"]
    assert metadata["keySpec"] == "AES_256"
    assert decrypted["plaintext"] == "cm91dGU="


@pytest.mark.parametrize("keystore", KEYSTORES)
@pytest.mark.parametrize(
    ("operation", "key_id"),
    [("health", None), ("metadata", "foo"), ("encrypt", "foo"), ("decrypt", "foo")],
)
async def test_get_on_an_api_uri_is_405(
    stack: Stack, keystore: str, operation: str, key_id: str | None
) -> None:
    async with open_client(stack, keystore) as xks:
        reply = await xks.send("GET", xks.path(operation, key_id), b"")

    assert reply.status == 405, str(reply)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/dev/kms/xks/v1",
        "/dev/kms/xks/v1/",
        "/dev/kms/xks/v1/unknown",
        "/dev/kms/xks/v1/keys/foo",
        "/dev/kms/xks/v1/keys/foo/sign",
        "/dev/kms/xks/v1/keys/foo/encrypt/extra",
        "/dev/kms/xks/v2/health",
        "/dev/kms/xks/v1/health/",
        "/dev/kms/xks/v1/health?x=1",
    ],
)
async def test_unknown_path_is_invalid_uri_path(stack: Stack, path: str) -> None:
    async with open_client(stack) as xks:
        reply = await xks.post(path, health_body())

    expect_error(reply, 404, "InvalidUriPathException")


@pytest.mark.parametrize(
    "prefix",
    ["/nope/kms/xks/v1", "/kms/xks/v1", "/tenant-c/kms/xks/v1", "/DEV/kms/xks/v1"],
)
async def test_unconfigured_prefix_is_invalid_uri_path(
    stack: Stack, prefix: str
) -> None:
    async with open_client(stack) as xks:
        health = await xks.post(f"{prefix}/health", health_body())
        encrypt = await xks.post(f"{prefix}/keys/foo/encrypt", encrypt_body(b"x"))

    expect_error(health, 404, "InvalidUriPathException")
    expect_error(encrypt, 404, "InvalidUriPathException")


@pytest.mark.parametrize(
    "key_id",
    ["foo$bar", "foo%20bar", "foo:bar", "foo+bar", "f%6Fo", "foo~bar", "foo/bar"],
)
async def test_key_id_with_a_character_outside_the_spec_set_is_invalid_uri_path(
    stack: Stack, key_id: str
) -> None:
    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("metadata", key_id), metadata_body())

    expect_error(reply, 404, "InvalidUriPathException")


async def test_key_id_of_129_characters_is_invalid_uri_path(stack: Stack) -> None:
    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("metadata", "k" * 129), metadata_body())

    expect_error(reply, 404, "InvalidUriPathException")


async def test_key_id_of_128_characters_is_routed_and_looked_up(stack: Stack) -> None:
    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("metadata", "k" * 128), metadata_body())

    # Routed to the key lookup, which finds no such key.
    expect_error(reply, 404, "KeyNotFoundException")


async def test_uri_longer_than_256_characters_is_invalid_uri_path(stack: Stack) -> None:
    long_prefix = "/" + "/".join(["segment"] * 32) + "/kms/xks/v1"
    assert len(long_prefix) > 256

    async with open_client(stack) as xks:
        reply = await xks.post(f"{long_prefix}/health", health_body())

    expect_error(reply, 404, "InvalidUriPathException")
