"""describe_key, encrypt and decrypt against a real simulator node, and the
XKS error each host-protocol result code becomes."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from sidecar.backends.cryptohub import (
    CryptoHubConfigError,
    CryptoHubSettings,
    NodeSettings,
)
from sidecar.xks.errors import (
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    InvalidStateException,
    KeyNotFoundException,
    ThrottlingException,
)
from simulator.keystore import KeyState, KeyStore
from tests.backends.conftest import BackendFactory, Cluster, SimNode

AAD = b"hsm aad: kms aad + ciphertext metadata"


async def test_describe_key_reports_spec_usages_state_and_version(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)

    description = await backend.describe_key("foo")

    assert description.key_spec == "AES_256"
    assert description.usages == {"ENCRYPT", "DECRYPT"}
    assert description.enabled
    assert description.current_version == 1


async def test_describe_key_reports_a_disabled_key_and_no_usages(
    sim: SimNode, make_backend: BackendFactory, store: KeyStore
) -> None:
    store.set_state("impotent_key", KeyState.DISABLED)
    backend = make_backend(sim)

    description = await backend.describe_key("impotent_key")

    assert not description.enabled
    assert description.usages == frozenset()


async def test_encrypt_then_decrypt_returns_the_plaintext(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    plaintext = bytes(range(256)) * 17  # 4352 bytes, over the XKS minimum

    sealed = await backend.encrypt("foo", plaintext, AAD)
    opened = await backend.decrypt("foo", *sealed, AAD)

    assert opened == plaintext
    assert (len(sealed.iv), len(sealed.tag)) == (12, 16)
    assert len(sealed.ciphertext) == len(plaintext)
    assert sealed.key_version == 1


async def test_empty_aad_round_trips(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)

    sealed = await backend.encrypt("foo", b"secret", b"")

    assert await backend.decrypt("foo", *sealed, b"") == b"secret"


async def test_encrypt_uses_the_current_version_after_rotation(
    sim: SimNode, make_backend: BackendFactory, store: KeyStore
) -> None:
    backend = make_backend(sim)
    before = await backend.encrypt("foo", b"old", AAD)
    store.rotate("foo")

    after = await backend.encrypt("foo", b"new", AAD)

    assert (before.key_version, after.key_version) == (1, 2)
    assert await backend.decrypt("foo", *before, AAD) == b"old"


@pytest.mark.parametrize(
    ("key_id", "error"),
    [
        ("no-such-key", KeyNotFoundException),
        ("decrypt_only_key", InvalidKeyUsageException),
        ("impotent_key", InvalidKeyUsageException),
    ],
)
async def test_encrypt_maps_key_errors(
    sim: SimNode,
    make_backend: BackendFactory,
    key_id: str,
    error: type[Exception],
) -> None:
    backend = make_backend(sim)

    with pytest.raises(error):
        await backend.encrypt(key_id, b"x", AAD)


async def test_describe_unknown_key_is_key_not_found(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    with pytest.raises(KeyNotFoundException):
        await make_backend(sim).describe_key("no-such-key")


async def test_disabled_key_is_invalid_state(
    sim: SimNode, make_backend: BackendFactory, store: KeyStore
) -> None:
    backend = make_backend(sim)
    sealed = await backend.encrypt("foo", b"x", AAD)
    store.set_state("foo", KeyState.DISABLED)

    with pytest.raises(InvalidStateException):
        await backend.encrypt("foo", b"x", AAD)
    with pytest.raises(InvalidStateException):
        await backend.decrypt("foo", *sealed, AAD)


async def test_decrypt_with_encrypt_only_key_is_invalid_key_usage(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    sealed = await backend.encrypt("encrypt_only_key", b"x", AAD)

    with pytest.raises(InvalidKeyUsageException):
        await backend.decrypt("encrypt_only_key", *sealed, AAD)


async def test_tampered_tag_or_aad_is_invalid_ciphertext_saying_nothing_more(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    version, iv, ciphertext, tag = await backend.encrypt("foo", b"x", AAD)
    bad_tag = bytes([tag[0] ^ 1]) + tag[1:]

    with pytest.raises(InvalidCiphertextException) as by_tag:
        await backend.decrypt("foo", version, iv, ciphertext, bad_tag, AAD)
    with pytest.raises(InvalidCiphertextException) as by_aad:
        await backend.decrypt("foo", version, iv, ciphertext, tag, b"other")

    assert by_tag.value.message == by_aad.value.message


async def test_unknown_key_version_is_invalid_ciphertext(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    _, iv, ciphertext, tag = await backend.encrypt("foo", b"x", AAD)

    with pytest.raises(InvalidCiphertextException):
        await backend.decrypt("foo", 99, iv, ciphertext, tag, AAD)


@pytest.mark.parametrize(("iv_length", "tag_length"), [(16, 16), (12, 15)])
async def test_iv_or_tag_of_another_length_is_invalid_ciphertext_without_asking(
    sim: SimNode, make_backend: BackendFactory, iv_length: int, tag_length: int
) -> None:
    backend = make_backend(sim)

    with pytest.raises(InvalidCiphertextException):
        await backend.decrypt(
            "foo", 1, b"\0" * iv_length, b"x", b"\0" * tag_length, AAD
        )
    assert sim.count("GCDE") == 0


async def test_busy_node_is_throttling(
    cluster: Cluster, make_backend: BackendFactory
) -> None:
    sim = await cluster.start(max_in_flight=1)
    sim.faults.latency_ms = 40
    backend = make_backend(sim, pool_size=1)
    await backend.describe_key("foo")  # the connection is open
    outcomes: list[str] = []

    async def encrypt() -> None:
        try:
            await backend.encrypt("foo", b"x", AAD)
            outcomes.append("ok")
        except ThrottlingException:
            outcomes.append("throttled")

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(encrypt)

    assert sorted(outcomes) == ["ok", "throttled"]


async def test_injected_fault_is_internal_exception(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    sim.faults.error_rate = 1.0

    with pytest.raises(InternalException) as caught:
        await make_backend(sim).encrypt("foo", b"x", AAD)

    assert caught.value.reason is not None
    assert "INJECTED_FAULT" in caught.value.reason


async def test_key_id_the_protocol_cannot_carry_is_internal_exception(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    with pytest.raises(InternalException):
        await make_backend(sim).encrypt("semi;colon", b"x", AAD)


def test_settings_refuse_no_nodes_duplicate_names_and_zero_timeouts(
    tmp_path: Path,
) -> None:
    node = NodeSettings("a", "127.0.0.1", 1234, tmp_path, tmp_path, tmp_path)

    with pytest.raises(CryptoHubConfigError, match="at least one"):
        CryptoHubSettings(nodes=())
    with pytest.raises(CryptoHubConfigError, match="unique"):
        CryptoHubSettings(nodes=(node, node))
    with pytest.raises(CryptoHubConfigError, match="request_timeout_s"):
        CryptoHubSettings(nodes=(node,), request_timeout_s=0)
