"""Key state and rotation as the HSM's operator changes them (needs the console).

Spec, GetKeyMetadata: keyStatus is ENABLED or DISABLED as the external key
manager says; Error codes: a disabled key is 400 InvalidStateException.
Spec, Encrypt: ciphertextMetadata (at most 20 bytes) may "encode versioning
of the key material", so a rotation changes it and older ciphertexts still
decrypt. Each test works on a key of its own, created and destroyed here;
the proxy may cache a key's description briefly, hence ``eventually``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.bodies import unb64
from tests.e2e.console import Console, needs_console
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.polling import eventually
from tests.e2e.stack import Stack
from tests.e2e.xks_client import XksClient, open_client

SETTLE = 5.0  # seconds a console change may take to show through the proxy


@pytest.fixture
def console(stack: Stack) -> Console:
    return needs_console(stack)


@pytest.fixture
async def own_key(console: Console) -> AsyncIterator[str]:
    key_id = await console.create_key()
    yield key_id
    await console.destroy_key(key_id)


async def _status_is(xks: XksClient, key_id: str, status: str) -> bool:
    described = expect_ok(await xks.metadata(key_id))
    return bool(described["keyStatus"] == status)


async def test_disabled_key_reports_disabled_and_refuses_crypto(
    stack: Stack, console: Console, own_key: str
) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt(own_key, b"before"))
        await console.disable_key(own_key)
        disabled = await eventually(
            lambda: _status_is(xks, own_key, "DISABLED"), within=SETTLE
        )
        encrypt = await xks.encrypt(own_key, b"after")
        decrypt = await xks.decrypt(own_key, encrypted)

    assert disabled, "keyStatus did not turn DISABLED"
    expect_error(encrypt, 400, "InvalidStateException")
    expect_error(decrypt, 400, "InvalidStateException")


async def test_re_enabled_key_reports_enabled_and_works_again(
    stack: Stack, console: Console, own_key: str
) -> None:
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt(own_key, b"before"))
        await console.disable_key(own_key)
        assert await eventually(
            lambda: _status_is(xks, own_key, "DISABLED"), within=SETTLE
        )
        await console.enable_key(own_key)
        enabled = await eventually(
            lambda: _status_is(xks, own_key, "ENABLED"), within=SETTLE
        )
        decrypted = expect_ok(await xks.decrypt(own_key, encrypted))

    assert enabled, "keyStatus did not return to ENABLED"
    assert unb64(decrypted["plaintext"]) == b"before"


async def test_key_usage_follows_the_hsm(
    stack: Stack, console: Console, own_key: str
) -> None:
    async with open_client(stack) as xks:
        before = expect_ok(await xks.metadata(own_key))["keyUsage"]
        await console.set_usages(own_key, "encrypt")

        async def decrypt_dropped() -> bool:
            usages = expect_ok(await xks.metadata(own_key))["keyUsage"]
            return "DECRYPT" not in usages and "ENCRYPT" in usages

        dropped = await eventually(decrypt_dropped, within=SETTLE)

    assert {"ENCRYPT", "DECRYPT"} <= set(before)
    assert dropped, "keyUsage still lists DECRYPT"


async def _metadata_after_rotation(xks: XksClient, key_id: str, old: str) -> str | None:
    encrypted = expect_ok(await xks.encrypt(key_id, b"after"))
    metadata = encrypted["ciphertextMetadata"]
    return metadata if metadata != old else None


async def test_rotation_changes_ciphertext_metadata_and_old_ciphertexts_decrypt(
    stack: Stack, console: Console, own_key: str
) -> None:
    async with open_client(stack) as xks:
        old = expect_ok(await xks.encrypt(own_key, b"v1", aad=b"aad"))
        same = expect_ok(await xks.encrypt(own_key, b"v1 again"))
        await console.rotate_key(own_key)
        new_metadata = await eventually(
            lambda: _metadata_after_rotation(xks, own_key, old["ciphertextMetadata"]),
            within=SETTLE,
        )
        old_back = expect_ok(await xks.decrypt(own_key, old, aad=b"aad"))
        new = expect_ok(await xks.encrypt(own_key, b"v2"))
        new_back = expect_ok(await xks.decrypt(own_key, new))

    assert same["ciphertextMetadata"] == old["ciphertextMetadata"]
    assert new_metadata is not None, "ciphertextMetadata unchanged after rotation"
    assert len(unb64(new_metadata)) <= 20
    assert unb64(old_back["plaintext"]) == b"v1"
    assert unb64(new_back["plaintext"]) == b"v2"


async def test_old_ciphertext_metadata_on_a_new_ciphertext_is_invalid(
    stack: Stack, console: Console, own_key: str
) -> None:
    # The metadata names the key version and is authenticated: swapping in
    # the pre-rotation metadata must not decrypt under either version.
    async with open_client(stack) as xks:
        old = expect_ok(await xks.encrypt(own_key, b"v1"))
        await console.rotate_key(own_key)
        assert await eventually(
            lambda: _metadata_after_rotation(xks, own_key, old["ciphertextMetadata"]),
            within=SETTLE,
        )
        new = expect_ok(await xks.encrypt(own_key, b"v2"))
        swapped = {**new, "ciphertextMetadata": old["ciphertextMetadata"]}
        reply = await xks.decrypt(own_key, swapped)

    expect_error(reply, 400, "InvalidCiphertextException")
