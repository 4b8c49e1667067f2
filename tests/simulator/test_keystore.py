"""KeyStore: keys, versions, states and usages, kept wrapped in SQLite."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.errors import (
    InvalidKeyLabel,
    KeyExists,
    KeyNotFound,
    KeyVersionNotFound,
    StoreError,
)
from simulator.hostproto.codec import ErrorCode
from simulator.keystore import KeyState, KeyStore, KeyUsage

MASTER_KEY = bytes(range(32))
BOTH = {KeyUsage.ENCRYPT, KeyUsage.DECRYPT}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "keys.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[KeyStore]:
    with KeyStore.open(db_path, MASTER_KEY) as opened:
        yield opened


# -- create, get, list ----------------------------------------------------


def test_create_returns_an_enabled_key_at_version_one(store: KeyStore) -> None:
    before = datetime.now(UTC)
    info = store.create("my-key_1.a", BOTH)

    assert info.label == "my-key_1.a"
    assert info.state is KeyState.ENABLED
    assert info.usages == frozenset(BOTH)
    assert info.current_version == 1
    assert info.versions == (1,)
    assert before <= info.created_at <= datetime.now(UTC)


def test_get_finds_a_key_by_label_and_by_uuid(store: KeyStore) -> None:
    info = store.create("k", BOTH)

    assert store.get("k") == info
    assert store.get(info.uuid) == info


def test_get_of_an_unknown_key_raises_key_not_found(store: KeyStore) -> None:
    with pytest.raises(KeyNotFound) as caught:
        store.get("nope")
    assert caught.value.code is ErrorCode.KEY_NOT_FOUND


def test_create_accepts_usages_as_plain_strings(store: KeyStore) -> None:
    info = store.create("k", ["WRAP", "UNWRAP"])  # type: ignore[list-item]

    assert info.usages == {KeyUsage.WRAP, KeyUsage.UNWRAP}


def test_create_with_no_usage_gives_an_empty_usage_set(store: KeyStore) -> None:
    assert store.create("k", []).usages == frozenset()


def test_create_refuses_a_taken_label(store: KeyStore) -> None:
    store.create("k", BOTH)

    with pytest.raises(KeyExists) as caught:
        store.create("k", [])
    assert caught.value.code is ErrorCode.INVALID_FIELD


def test_create_refuses_a_label_equal_to_another_keys_uuid(store: KeyStore) -> None:
    info = store.create("k", BOTH)

    with pytest.raises(KeyExists):
        store.create(info.uuid, BOTH)


def test_create_many_creates_all_or_nothing(store: KeyStore) -> None:
    store.create("taken", BOTH)

    with pytest.raises(KeyExists):
        store.create_many([("a", BOTH), ("taken", BOTH)])
    assert [k.label for k in store.list()] == ["taken"]


def test_create_many_refuses_a_label_given_twice(store: KeyStore) -> None:
    with pytest.raises(KeyExists):
        store.create_many([("a", BOTH), ("a", [])])
    assert store.is_empty()


def test_list_returns_every_key_ordered_by_label(store: KeyStore) -> None:
    for label in ("b", "c", "a"):
        store.create(label, BOTH)
    store.rotate("c")

    listed = store.list()

    assert [k.label for k in listed] == ["a", "b", "c"]
    assert listed[2].versions == (1, 2)


def test_is_empty_is_true_only_without_keys(store: KeyStore) -> None:
    assert store.is_empty()
    store.create("k", BOTH)
    assert not store.is_empty()
    store.destroy("k")
    assert store.is_empty()


# -- labels ---------------------------------------------------------------


@pytest.mark.parametrize(
    "label",
    [
        "a",
        "A-Z.a_z-0.9",
        "x" * 128,
        "0123",
        "-",
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    ],
)
def test_labels_of_the_external_key_id_alphabet_are_accepted(
    store: KeyStore, label: str
) -> None:
    assert store.create(label, BOTH).label == label


@pytest.mark.parametrize(
    "label",
    ["", "x" * 129, "with space", "slash/", "semi;colon", "ünï", "tab\t", "a\n"],
)
def test_labels_outside_the_alphabet_are_refused(store: KeyStore, label: str) -> None:
    with pytest.raises(InvalidKeyLabel) as caught:
        store.create(label, BOTH)
    assert caught.value.code is ErrorCode.INVALID_FIELD
    assert store.is_empty()


def test_get_with_a_malformed_reference_raises_invalid_key_label(
    store: KeyStore,
) -> None:
    with pytest.raises(InvalidKeyLabel):
        store.get("no such;key")


# -- rotate, state, usages -----------------------------------------------


def test_rotate_adds_a_new_current_version_and_keeps_the_old(store: KeyStore) -> None:
    store.create("k", BOTH)

    store.rotate("k")
    info = store.rotate("k")

    assert info.current_version == 3
    assert info.versions == (1, 2, 3)
    assert store.get("k") == info


def test_set_state_disables_and_reenables(store: KeyStore) -> None:
    store.create("k", BOTH)

    assert store.set_state("k", KeyState.DISABLED).state is KeyState.DISABLED
    assert store.get("k").state is KeyState.DISABLED
    assert store.set_state("k", KeyState.ENABLED).state is KeyState.ENABLED


def test_set_usages_replaces_the_usage_set(store: KeyStore) -> None:
    info = store.create("k", BOTH)

    changed = store.set_usages(info.uuid, [KeyUsage.WRAP])

    assert changed.usages == {KeyUsage.WRAP}
    assert store.get("k").usages == {KeyUsage.WRAP}


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("rotate", ()),
        ("set_state", (KeyState.DISABLED,)),
        ("set_usages", ([],)),
        ("destroy", ()),
    ],
)
def test_mutating_an_unknown_key_raises_key_not_found(
    store: KeyStore, method: str, args: tuple[object, ...]
) -> None:
    with pytest.raises(KeyNotFound):
        getattr(store, method)("nope", *args)


# -- destroy --------------------------------------------------------------


def test_destroy_removes_the_key_and_all_its_version_rows(
    store: KeyStore, db_path: Path
) -> None:
    info = store.create("k", BOTH)
    store.rotate("k")
    store.create("other", BOTH)

    store.destroy("k")

    with pytest.raises(KeyNotFound):
        store.get("k")
    with pytest.raises(KeyNotFound):
        store.get(info.uuid)
    with pytest.raises(KeyVersionNotFound):
        store.cipher(info.uuid, 1)
    assert _count_rows(db_path, info.uuid) == (0, 0)
    assert [k.label for k in store.list()] == ["other"]


def test_a_destroyed_label_can_be_created_again_as_a_new_key(store: KeyStore) -> None:
    old = store.create("k", BOTH)
    store.destroy("k")

    new = store.create("k", BOTH)

    assert new.uuid != old.uuid
    assert new.versions == (1,)


# -- persistence and the file ----------------------------------------------


def test_keys_persist_across_reopen(db_path: Path) -> None:
    with KeyStore.open(db_path, MASTER_KEY) as first:
        first.create("k", BOTH)
        first.rotate("k")
        first.set_usages("k", [KeyUsage.DECRYPT])
        first.set_state("k", KeyState.DISABLED)
        cipher_v1 = first.cipher(first.get("k").uuid, 1)
        created = first.get("k")
        probe = cipher_v1.encrypt(b"\0" * 12, b"probe", None)

    with KeyStore.open(db_path, MASTER_KEY) as second:
        assert second.get("k") == created
        reopened = second.cipher(created.uuid, 1)
        assert reopened.decrypt(b"\0" * 12, probe, None) == b"probe"


def test_open_creates_the_directory_and_a_private_database_file(
    store: KeyStore, db_path: Path
) -> None:
    store.create("k", BOTH)

    for path in (db_path, db_path.with_name("keys.db-wal")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_the_database_is_in_wal_mode_with_a_schema_version(
    store: KeyStore, db_path: Path
) -> None:
    with _raw(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_key_material_rests_wrapped_under_the_master_key_bound_to_its_row(
    store: KeyStore, db_path: Path
) -> None:
    info = store.create("k", BOTH)
    wrapped = _wrapped_blob(db_path, info.uuid, 1)

    # The storage format: nonce (12) || AES-256-GCM(master key) of the 32-byte
    # material (32) and tag (16), with the key UUID and version in the AAD.
    aad = f"cryptohub-sim key-wrap v1|{info.uuid}|1".encode()
    material = AESGCM(MASTER_KEY).decrypt(wrapped[:12], wrapped[12:], aad)
    assert len(wrapped) == 12 + 32 + 16
    assert len(material) == 32

    # It is the material the store encrypts with, and it is nowhere in clear.
    sealed = store.cipher(info.uuid, 1).encrypt(b"\1" * 12, b"probe", None)
    assert AESGCM(material).decrypt(b"\1" * 12, sealed, None) == b"probe"
    on_disk = b"".join(p.read_bytes() for p in db_path.parent.iterdir())
    assert material not in on_disk


def test_open_with_the_wrong_master_key_fails_without_detail(db_path: Path) -> None:
    KeyStore.open(db_path, MASTER_KEY).close()

    with pytest.raises(StoreError) as caught:
        KeyStore.open(db_path, bytes(32))

    message = str(caught.value)
    assert "master key does not match" in message
    assert MASTER_KEY.hex() not in message
    assert bytes(32).hex() not in message


def test_open_refuses_a_master_key_of_the_wrong_length(db_path: Path) -> None:
    with pytest.raises(StoreError):
        KeyStore.open(db_path, b"short")


def test_open_refuses_a_file_that_is_not_sqlite(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(b"this is not a database, just text " * 200)
    os.chmod(db_path, 0o600)

    with pytest.raises(StoreError, match="cannot open key store"):
        KeyStore.open(db_path, MASTER_KEY)


def test_open_refuses_a_foreign_sqlite_database(db_path: Path) -> None:
    db_path.parent.mkdir()
    with _raw(db_path) as raw:
        raw.execute("CREATE TABLE something_else (x)")

    with pytest.raises(StoreError, match="not a key store"):
        KeyStore.open(db_path, MASTER_KEY)


def test_open_refuses_a_schema_version_it_does_not_know(db_path: Path) -> None:
    KeyStore.open(db_path, MASTER_KEY).close()
    with _raw(db_path) as raw:
        raw.execute("UPDATE schema_version SET version = 99")

    with pytest.raises(StoreError, match="schema version 99"):
        KeyStore.open(db_path, MASTER_KEY)


def test_a_wrapped_blob_moved_to_another_key_fails_to_unwrap(db_path: Path) -> None:
    with KeyStore.open(db_path, MASTER_KEY) as store:
        a = store.create("a", BOTH)
        b = store.create("b", BOTH)
    _copy_wrapped(db_path, (a.uuid, 1), (b.uuid, 1))

    with KeyStore.open(db_path, MASTER_KEY) as store:
        store.cipher(a.uuid, 1)  # the original row still unwraps
        with pytest.raises(StoreError, match="integrity check"):
            store.cipher(b.uuid, 1)


def test_a_wrapped_blob_moved_to_another_version_fails_to_unwrap(
    db_path: Path,
) -> None:
    with KeyStore.open(db_path, MASTER_KEY) as store:
        a = store.create("a", BOTH)
        store.rotate("a")
    _copy_wrapped(db_path, (a.uuid, 1), (a.uuid, 2))

    with (
        KeyStore.open(db_path, MASTER_KEY) as store,
        pytest.raises(StoreError, match="integrity check"),
    ):
        store.cipher(a.uuid, 2)


def test_a_closed_store_refuses_use_and_close_is_idempotent(db_path: Path) -> None:
    store = KeyStore.open(db_path, MASTER_KEY)
    store.create("k", BOTH)
    store.close()
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.get("k")
    with pytest.raises(StoreError, match="closed"):
        store.create("k2", BOTH)


def test_the_store_repr_does_not_show_the_master_key(store: KeyStore) -> None:
    shown = repr(store) + repr(vars(store))

    assert MASTER_KEY.hex() not in shown
    assert repr(MASTER_KEY) not in shown


# -- cache ----------------------------------------------------------------


def test_cached_metadata_follows_every_mutation(store: KeyStore) -> None:
    info = store.create("k", BOTH)
    assert store.get("k") is store.get(info.uuid)  # both refs hit one entry

    store.rotate("k")
    assert store.get(info.uuid).current_version == 2
    store.set_state(info.uuid, KeyState.DISABLED)
    assert store.get("k").state is KeyState.DISABLED
    store.set_usages("k", [])
    assert store.get(info.uuid).usages == frozenset()
    store.destroy(info.uuid)
    with pytest.raises(KeyNotFound):
        store.get("k")


def test_cached_reads_do_not_touch_sqlite(store: KeyStore) -> None:
    info = store.create("k", BOTH)
    store.get("k")
    store.cipher(info.uuid, 1)
    statements: list[str] = []
    # The connection is private; tracing it is the direct way to prove that a
    # cache hit runs no SQL at all.
    store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]

    store.get("k")
    store.get(info.uuid)
    store.cipher(info.uuid, 1)

    assert statements == []


# -- helpers --------------------------------------------------------------


@contextmanager
def _raw(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain SQLite connection that commits and closes on exit."""
    with closing(sqlite3.connect(db_path)) as raw, raw:
        yield raw


def _count_rows(db_path: Path, key_uuid: str) -> tuple[int, int]:
    with _raw(db_path) as raw:
        (keys,) = raw.execute("SELECT count(*) FROM keys WHERE uuid = ?", (key_uuid,))
        (versions,) = raw.execute(
            "SELECT count(*) FROM key_versions WHERE key_uuid = ?", (key_uuid,)
        )
    return keys[0], versions[0]


def _wrapped_blob(db_path: Path, key_uuid: str, version: int) -> bytes:
    with _raw(db_path) as raw:
        (row,) = raw.execute(
            "SELECT wrapped FROM key_versions WHERE key_uuid = ? AND version = ?",
            (key_uuid, version),
        )
    blob: bytes = row[0]
    return blob


def _copy_wrapped(
    db_path: Path, source: tuple[str, int], target: tuple[str, int]
) -> None:
    blob = _wrapped_blob(db_path, *source)
    with _raw(db_path) as raw:
        raw.execute(
            "UPDATE key_versions SET wrapped = ? WHERE key_uuid = ? AND version = ?",
            (blob, *target),
        )
