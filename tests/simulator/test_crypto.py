"""HsmCrypto: AES-256-GCM under stored keys, refused by state, usage, version."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from simulator.crypto import GcmResult, HsmCrypto
from simulator.errors import (
    DecryptFailed,
    KeyDisabled,
    KeyNotFound,
    KeyVersionNotFound,
    UsageNotPermitted,
)
from simulator.hostproto.codec import ErrorCode
from simulator.keystore import KeyState, KeyStore, KeyUsage
from simulator.seed import seed

MASTER_KEY = bytes(range(32, 64))

# The XKS spec's limits: up to 4300 bytes of plaintext, up to 8192 of AAD.
plaintexts = st.binary(max_size=4300)
aads = st.one_of(st.none(), st.binary(max_size=8192))


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyStore]:
    """One seeded store for the property tests, which must not mutate it."""
    path = tmp_path_factory.mktemp("crypto") / "keys.db"
    with KeyStore.open(path, MASTER_KEY) as store:
        seed(store)
        yield store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as opened:
        seed(opened)
        yield opened


@pytest.fixture
def hsm(store: KeyStore) -> HsmCrypto:
    return HsmCrypto(store)


def _decrypt(hsm: HsmCrypto, ref: str, r: GcmResult, aad: bytes | None) -> bytes:
    return hsm.decrypt(ref, r.key_version, r.iv, r.ciphertext, r.tag, aad)


# -- round trips ----------------------------------------------------------


@given(plaintext=plaintexts, aad=aads)
def test_decrypt_inverts_encrypt(
    module_store: KeyStore, plaintext: bytes, aad: bytes | None
) -> None:
    hsm = HsmCrypto(module_store)

    result = hsm.encrypt("foo", plaintext, aad)

    assert len(result.iv) == 12
    assert len(result.tag) == 16
    assert len(result.ciphertext) == len(plaintext)
    assert _decrypt(hsm, "foo", result, aad) == plaintext


@given(
    plaintext=plaintexts,
    aad=st.binary(max_size=64),
    field=st.sampled_from(["iv", "ciphertext", "tag", "aad"]),
    data=st.data(),
)
def test_any_flipped_bit_makes_decryption_fail_opaquely(
    module_store: KeyStore,
    plaintext: bytes,
    aad: bytes,
    field: str,
    data: st.DataObject,
) -> None:
    hsm = HsmCrypto(module_store)
    result = hsm.encrypt("foo", plaintext, aad)
    parts = {"iv": result.iv, "ciphertext": result.ciphertext, "tag": result.tag}
    parts["aad"] = aad
    original = parts[field]
    assume(original)  # an empty field has no bit to flip
    bit = data.draw(st.integers(0, len(original) * 8 - 1))
    flipped = bytearray(original)
    flipped[bit // 8] ^= 1 << (bit % 8)
    parts[field] = bytes(flipped)

    with pytest.raises(DecryptFailed) as caught:
        hsm.decrypt(
            "foo", 1, parts["iv"], parts["ciphertext"], parts["tag"], parts["aad"]
        )

    assert str(caught.value) == "decryption failed"
    assert caught.value.code is ErrorCode.DECRYPT_FAILED


def test_missing_and_empty_aad_are_the_same_aad(hsm: HsmCrypto) -> None:
    result = hsm.encrypt("foo", b"data", None)

    assert _decrypt(hsm, "foo", result, b"") == b"data"


def test_a_key_is_usable_by_its_uuid(hsm: HsmCrypto, store: KeyStore) -> None:
    key_uuid = store.get("foo").uuid

    result = hsm.encrypt(key_uuid, b"data", b"aad")

    assert _decrypt(hsm, "foo", result, b"aad") == b"data"


def test_every_encryption_draws_a_fresh_iv(hsm: HsmCrypto) -> None:
    results = [hsm.encrypt("foo", b"same", b"same") for _ in range(50)]

    assert len({r.iv for r in results}) == 50
    assert len({r.ciphertext + r.tag for r in results}) == 50


def test_the_iv_comes_from_os_urandom(
    hsm: HsmCrypto, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[bytes] = []

    def recording_urandom(n: int) -> bytes:
        drawn.append(real_urandom(n))
        return drawn[-1]

    real_urandom = os.urandom
    monkeypatch.setattr(os, "urandom", recording_urandom)
    result = hsm.encrypt("foo", b"data", None)

    assert drawn == [result.iv]


def test_a_wrong_key_version_fails_to_decrypt(hsm: HsmCrypto, store: KeyStore) -> None:
    store.rotate("foo")
    result = hsm.encrypt("foo", b"data", None)

    with pytest.raises(DecryptFailed):
        hsm.decrypt("foo", 1, result.iv, result.ciphertext, result.tag, None)


@pytest.mark.parametrize(("iv_len", "tag_len"), [(8, 16), (16, 16), (12, 12), (12, 0)])
def test_ivs_and_tags_of_other_lengths_fail_to_decrypt(
    hsm: HsmCrypto, iv_len: int, tag_len: int
) -> None:
    result = hsm.encrypt("foo", b"data", None)
    iv = (result.iv * 2)[:iv_len]

    with pytest.raises(DecryptFailed, match=r"^decryption failed$"):
        hsm.decrypt("foo", 1, iv, result.ciphertext, result.tag[:tag_len], None)


# -- rotation -------------------------------------------------------------


def test_after_rotation_old_ciphertexts_decrypt_and_new_ones_carry_the_new_version(
    hsm: HsmCrypto, store: KeyStore
) -> None:
    old = hsm.encrypt("foo", b"old", b"a")

    store.rotate("foo")
    new = hsm.encrypt("foo", b"new", b"a")

    assert (old.key_version, new.key_version) == (1, 2)
    assert _decrypt(hsm, "foo", old, b"a") == b"old"
    assert _decrypt(hsm, "foo", new, b"a") == b"new"


def test_an_unknown_key_version_is_refused(hsm: HsmCrypto) -> None:
    result = hsm.encrypt("foo", b"data", None)

    for version in (0, 2, -1):
        with pytest.raises(KeyVersionNotFound) as caught:
            hsm.decrypt("foo", version, result.iv, result.ciphertext, result.tag, None)
        assert caught.value.code is ErrorCode.KEY_VERSION_NOT_FOUND


# -- refusals -------------------------------------------------------------


def test_an_unknown_key_is_refused(hsm: HsmCrypto) -> None:
    with pytest.raises(KeyNotFound):
        hsm.encrypt("missing", b"data", None)
    with pytest.raises(KeyNotFound):
        hsm.decrypt("missing", 1, bytes(12), b"", bytes(16), None)


def test_a_disabled_key_refuses_both_operations_until_enabled(
    hsm: HsmCrypto, store: KeyStore
) -> None:
    result = hsm.encrypt("foo", b"data", None)

    store.set_state("foo", KeyState.DISABLED)
    with pytest.raises(KeyDisabled) as caught:
        hsm.encrypt("foo", b"data", None)
    assert caught.value.code is ErrorCode.KEY_DISABLED
    with pytest.raises(KeyDisabled):
        _decrypt(hsm, "foo", result, None)

    store.set_state("foo", KeyState.ENABLED)
    assert _decrypt(hsm, "foo", result, None) == b"data"


@pytest.mark.parametrize(
    ("label", "may_encrypt", "may_decrypt"),
    [
        ("encrypt_only_key", True, False),
        ("decrypt_only_key", False, True),
        ("impotent_key", False, False),
    ],
)
def test_usages_decide_which_operations_a_key_permits(
    hsm: HsmCrypto, store: KeyStore, label: str, may_encrypt: bool, may_decrypt: bool
) -> None:
    # A ciphertext under this key, made while it briefly permits encryption.
    store.set_usages(label, [KeyUsage.ENCRYPT])
    result = hsm.encrypt(label, b"data", None)
    store.set_usages(label, _seeded_usages(may_encrypt, may_decrypt))

    _assert_permitted(may_encrypt, lambda: hsm.encrypt(label, b"data", None))
    _assert_permitted(may_decrypt, lambda: _decrypt(hsm, label, result, None))


def test_changed_usages_take_effect_at_once(hsm: HsmCrypto, store: KeyStore) -> None:
    hsm.encrypt("foo", b"data", None)

    store.set_usages("foo", [KeyUsage.DECRYPT, KeyUsage.WRAP])

    with pytest.raises(UsageNotPermitted) as caught:
        hsm.encrypt("foo", b"data", None)
    assert caught.value.code is ErrorCode.USAGE_NOT_PERMITTED


def test_state_is_checked_before_usage(hsm: HsmCrypto, store: KeyStore) -> None:
    store.set_state("impotent_key", KeyState.DISABLED)

    with pytest.raises(KeyDisabled):
        hsm.encrypt("impotent_key", b"data", None)


def test_usage_is_checked_before_the_key_version(hsm: HsmCrypto) -> None:
    with pytest.raises(UsageNotPermitted):
        hsm.decrypt("encrypt_only_key", 7, bytes(12), b"", bytes(16), None)


def test_the_key_version_is_checked_before_any_cryptography(hsm: HsmCrypto) -> None:
    # An IV of a length GCM would refuse still yields the version error.
    with pytest.raises(KeyVersionNotFound):
        hsm.decrypt("foo", 7, b"", b"", b"", None)


def test_a_destroyed_key_is_refused_at_once(hsm: HsmCrypto, store: KeyStore) -> None:
    result = hsm.encrypt("foo", b"data", None)

    store.destroy("foo")

    with pytest.raises(KeyNotFound):
        _decrypt(hsm, "foo", result, None)


def test_encrypt_and_decrypt_run_no_sql_once_the_key_is_cached(
    hsm: HsmCrypto, store: KeyStore
) -> None:
    result = hsm.encrypt("foo", b"data", None)
    statements: list[str] = []
    # The connection is private; tracing it proves the read path runs no SQL.
    store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]

    for _ in range(10):
        _decrypt(hsm, "foo", hsm.encrypt("foo", b"data", None), None)
    _decrypt(hsm, "foo", result, None)

    assert statements == []


def test_concurrent_threads_see_consistent_keys_while_the_key_rotates(
    hsm: HsmCrypto, store: KeyStore
) -> None:
    failures: list[BaseException] = []

    def round_trips() -> None:
        try:
            for n in range(150):
                data = n.to_bytes(2, "big")
                assert (
                    _decrypt(hsm, "foo", hsm.encrypt("foo", data, data), data) == data
                )
        except BaseException as exc:  # reported by the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=round_trips) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        store.rotate("foo")
    for thread in threads:
        thread.join()

    assert failures == []
    assert store.get("foo").current_version == 21


def test_no_log_line_shows_plaintext_aad_or_key_material(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plaintext, aad = b"PLAINTEXT-MARKER-1234", b"AAD-MARKER-5678"

    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as store:
        hsm = HsmCrypto(store)
        seed(store)
        result = hsm.encrypt("foo", plaintext, aad)
        store.rotate("foo")
        _decrypt(hsm, "foo", result, aad)
        with pytest.raises(DecryptFailed):
            _decrypt(hsm, "foo", result, b"wrong")
        store.destroy("foo")

    assert caplog.records, "the store logs its mutations"
    for secret in (plaintext, aad, MASTER_KEY):
        for shown in (secret.hex(), repr(secret), secret.decode("latin-1")):
            assert shown not in caplog.text


def _seeded_usages(encrypt: bool, decrypt: bool) -> list[KeyUsage]:
    wanted = {KeyUsage.ENCRYPT: encrypt, KeyUsage.DECRYPT: decrypt}
    return [usage for usage, on in wanted.items() if on]


def _assert_permitted(permitted: bool, operation: Callable[[], object]) -> None:
    if permitted:
        operation()
        return
    with pytest.raises(UsageNotPermitted):
        operation()
