"""The simulator's key store: AES-256 keys, their versions, states and usages.

A key is addressed by its external key id (its *label*, the XKS
``externalKeyId``) or by its UUID. It has one or more versions: the current one
encrypts, older ones still decrypt what they encrypted. It is ENABLED or
DISABLED, and carries the usages it permits.

Storage is one SQLite file. Each version's 32 bytes of key material rest
wrapped with AES-256-GCM under the master key; the wrap's AAD names the key
UUID and version, so a blob copied into another row fails to unwrap instead of
silently serving the wrong key. A master-key check value lets ``open`` refuse a
wrong master key at once, rather than at the first decryption.

Durability: WAL journal with ``synchronous=FULL`` and one transaction per
mutation, so a method that returned has committed and synced its write; a
process killed at any instant leaves the last committed state, never a torn one.

Speed: the XKS read path (encrypt and decrypt) must not touch SQLite. Key
metadata and unwrapped AESGCM objects are cached in memory, and every mutation
made through this object updates the cache under the same lock that serializes
the write. TODO: mutations made by another process on the same file are not
seen by a running store until it is reopened; the simulator runs one process.

The store is synchronous. Its methods are safe to call from several threads
(for instance through ``trio.to_thread.run_sync``): writes and cache fills take
one lock, cache hits take none. A mutation waits for an fsync, so async callers
should run mutations in a worker thread.
"""

from __future__ import annotations

import builtins
import enum
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.errors import (
    InvalidKeyLabel,
    KeyExists,
    KeyNotFound,
    KeyVersionNotFound,
    StoreError,
)

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256: the only key spec the simulator offers ("AES_256")
SCHEMA_VERSION = 1
_NONCE_BYTES = 12  # the GCM IV length NIST SP 800-38D recommends

# XKS API spec, "externalKeyId": at most 128 characters of letters, digits,
# hyphen, period and underscore. Labels follow it so any label can be an XKS key.
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,128}")


class KeyState(enum.StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class KeyUsage(enum.StrEnum):
    ENCRYPT = "ENCRYPT"
    DECRYPT = "DECRYPT"
    WRAP = "WRAP"
    UNWRAP = "UNWRAP"


@dataclass(frozen=True)
class KeyInfo:
    """A key's metadata; never its material."""

    uuid: str
    label: str
    state: KeyState
    usages: frozenset[KeyUsage]
    current_version: int
    versions: tuple[int, ...]
    created_at: datetime


def validate_label(label: str) -> str:
    """``label`` itself if it is a valid external key id, else InvalidKeyLabel."""
    if not _LABEL.fullmatch(label):
        raise InvalidKeyLabel("key label must be 1-128 characters of A-Z a-z 0-9 . _ -")
    return label


class KeyStore:
    """Keys in one SQLite file, wrapped under a master key. Use ``open``."""

    def __init__(self, conn: sqlite3.Connection, wrapper: AESGCM) -> None:
        self._conn: sqlite3.Connection | None = conn
        # Only the AESGCM object is kept, never the master key bytes, so no
        # attribute or repr of the store can show them.
        self._wrapper = wrapper
        self._lock = threading.RLock()
        self._infos: dict[str, KeyInfo] = {}  # by label and by UUID
        self._ciphers: dict[tuple[str, int], AESGCM] = {}

    @classmethod
    def open(cls, path: Path, master_key: bytes) -> KeyStore:
        """Open the store at ``path``, creating it (mode 0600) if missing.

        Raises StoreError if the master key does not match the store, the file
        is not a key store, or its schema is not the one this code knows.
        """
        if len(master_key) != KEY_BYTES:
            raise StoreError(f"master key must be {KEY_BYTES} bytes")
        wrapper = AESGCM(master_key)

        with _converted(f"{path}: cannot open key store"):
            conn = _connect(path)
        try:
            with _converted(f"{path}: cannot open key store"):
                _initialize(conn, path, wrapper)
        except BaseException:
            conn.close()
            raise
        log.info("key store opened path=%s", path)
        return cls(conn, wrapper)

    def close(self) -> None:
        """Close the database and drop every cached key. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._infos.clear()
            self._ciphers.clear()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------

    def get(self, ref: str) -> KeyInfo:
        """The key whose label or UUID is ``ref``, else KeyNotFound.

        A ``ref`` outside the label alphabet raises InvalidKeyLabel.
        """
        info = self._infos.get(ref)
        if info is not None:
            return info

        validate_label(ref)
        with self._lock, self._reading() as conn:
            info = self._infos.get(ref)
            if info is None:
                info = _fetch_key(conn, ref)
                self._remember(info)
        return info

    def list(self) -> builtins.list[KeyInfo]:
        """Every key, ordered by label."""
        with self._lock, self._reading() as conn:
            rows = conn.execute(_SELECT_KEYS + " GROUP BY k.uuid ORDER BY k.label")
            return [_info_from_row(row) for row in rows]

    def is_empty(self) -> bool:
        with self._lock, self._reading() as conn:
            return conn.execute("SELECT 1 FROM keys LIMIT 1").fetchone() is None

    def cipher(self, key_uuid: str, version: int) -> AESGCM:
        """The AES-GCM primitive of one key version, else KeyVersionNotFound.

        For the HSM's inside (``simulator.crypto``) only: it holds key material.
        """
        cached = self._ciphers.get((key_uuid, version))
        if cached is not None:
            return cached

        with self._lock, self._reading() as conn:
            cached = self._ciphers.get((key_uuid, version))
            if cached is None:
                cached = AESGCM(self._load_material(conn, key_uuid, version))
                self._ciphers[(key_uuid, version)] = cached
        return cached

    # -- mutating --------------------------------------------------------

    def create(self, label: str, usages: Iterable[KeyUsage]) -> KeyInfo:
        """Create an ENABLED key at version 1; KeyExists if the label is taken."""
        return self.create_many([(label, usages)])[0]

    def create_many(
        self, specs: Iterable[tuple[str, Iterable[KeyUsage]]]
    ) -> builtins.list[KeyInfo]:
        """Create several keys in one transaction: all of them or none."""
        wanted = [(validate_label(label), _usages(u)) for label, u in specs]
        labels = [label for label, _ in wanted]
        if len(set(labels)) != len(labels):
            raise KeyExists("the same label is requested twice")

        with self._lock:
            with self._transaction() as conn:
                uuids = [self._insert_key(conn, label, u) for label, u in wanted]
                created = [_fetch_key(conn, key_uuid) for key_uuid in uuids]
            for info in created:
                self._remember(info)
                log.info("key created label=%s uuid=%s", info.label, info.uuid)
        return created

    def rotate(self, ref: str) -> KeyInfo:
        """Add a new current version; older versions stay for decryption."""

        def add_version(conn: sqlite3.Connection, info: KeyInfo) -> None:
            version = info.current_version + 1
            self._insert_version(conn, info.uuid, version)
            conn.execute(
                "UPDATE keys SET current_version = ? WHERE uuid = ?",
                (version, info.uuid),
            )

        info = self._mutate(ref, add_version)
        log.info("key rotated uuid=%s version=%d", info.uuid, info.current_version)
        return info

    def set_state(self, ref: str, state: KeyState) -> KeyInfo:
        new = KeyState(state).value
        info = self._mutate(ref, _updater("UPDATE keys SET state = ?", new))
        log.info("key state set uuid=%s state=%s", info.uuid, info.state)
        return info

    def set_usages(self, ref: str, usages: Iterable[KeyUsage]) -> KeyInfo:
        new = _encode_usages(_usages(usages))
        info = self._mutate(ref, _updater("UPDATE keys SET usages = ?", new))
        log.info("key usages set uuid=%s usages=%s", info.uuid, new)
        return info

    def destroy(self, ref: str) -> None:
        """Delete the key and every version: its rows, and its cache entries."""
        with self._lock:
            with self._transaction() as conn:
                info = _fetch_key(conn, ref)
                conn.execute(
                    "DELETE FROM key_versions WHERE key_uuid = ?", (info.uuid,)
                )
                conn.execute("DELETE FROM keys WHERE uuid = ?", (info.uuid,))
            self._forget(info)
            self._checkpoint()
        log.info("key destroyed label=%s uuid=%s", info.label, info.uuid)

    # -- internals -------------------------------------------------------

    def _mutate(
        self, ref: str, change: Callable[[sqlite3.Connection, KeyInfo], None]
    ) -> KeyInfo:
        # The lock spans the transaction and the cache update, so no reader
        # can cache the old row between commit and invalidation.
        with self._lock:
            with self._transaction() as conn:
                before = _fetch_key(conn, ref)
                change(conn, before)
                after = _fetch_key(conn, before.uuid)
            self._forget(before)
            self._remember(after)
        return after

    def _insert_key(
        self, conn: sqlite3.Connection, label: str, usages: frozenset[KeyUsage]
    ) -> str:
        # No label may equal another key's UUID, nor a UUID another label, so a
        # reference always names at most one key.
        if _ref_taken(conn, label):
            raise KeyExists(f"a key with label or UUID {label!r} already exists")
        key_uuid = str(uuid.uuid4())
        while _ref_taken(conn, key_uuid):
            key_uuid = str(uuid.uuid4())

        conn.execute(
            "INSERT INTO keys (uuid, label, state, usages, current_version,"
            " created_at) VALUES (?, ?, ?, ?, 1, ?)",
            (key_uuid, label, KeyState.ENABLED.value, _encode_usages(usages), _now()),
        )
        self._insert_version(conn, key_uuid, 1)
        return key_uuid

    def _insert_version(self, conn: sqlite3.Connection, key_uuid: str, v: int) -> None:
        nonce = os.urandom(_NONCE_BYTES)
        material = os.urandom(KEY_BYTES)
        sealed = self._wrapper.encrypt(nonce, material, _wrap_aad(key_uuid, v))
        conn.execute(
            "INSERT INTO key_versions (key_uuid, version, wrapped, created_at)"
            " VALUES (?, ?, ?, ?)",
            (key_uuid, v, nonce + sealed, _now()),
        )

    def _load_material(
        self, conn: sqlite3.Connection, key_uuid: str, version: int
    ) -> bytes:
        row = conn.execute(
            "SELECT wrapped FROM key_versions WHERE key_uuid = ? AND version = ?",
            (key_uuid, version),
        ).fetchone()
        if row is None:
            raise KeyVersionNotFound(f"key {key_uuid} has no version {version}")

        # TODO: the unwrapped material lives on in Python bytes objects until
        # collected; Python cannot zeroize them, unlike a real HSM's memory.
        wrapped: bytes = row[0]
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            return self._wrapper.decrypt(nonce, sealed, _wrap_aad(key_uuid, version))
        except InvalidTag as exc:
            raise StoreError(
                f"key {key_uuid} version {version}: stored key material failed "
                "its integrity check"
            ) from exc

    def _checkpoint(self) -> None:
        # secure_delete zeroed the freed pages; checkpointing now copies them
        # into the main file and truncates the WAL that still held the old
        # wrapped blobs. The key is gone either way, so a failure only logs.
        try:
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint after destroy failed: %s", exc)

    def _remember(self, info: KeyInfo) -> None:
        self._infos[info.label] = info
        self._infos[info.uuid] = info

    def _forget(self, info: KeyInfo) -> None:
        self._infos.pop(info.label, None)
        self._infos.pop(info.uuid, None)
        for version in info.versions:
            self._ciphers.pop((info.uuid, version), None)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("key store is closed")
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with _converted("key store read failed"):
            yield self._connection()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with _converted("key store write failed"):
            conn = self._connection()
            with _transaction(conn):
                yield conn


# -- SQLite --------------------------------------------------------------

_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE store_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    """CREATE TABLE keys (
        uuid TEXT PRIMARY KEY,
        label TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
        usages TEXT NOT NULL,
        current_version INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE key_versions (
        key_uuid TEXT NOT NULL REFERENCES keys (uuid) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        wrapped BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (key_uuid, version)
    ) WITHOUT ROWID""",
)

# The versions come back as one comma list; a single statement reads a
# consistent snapshot without an explicit read transaction.
_SELECT_KEYS = """
    SELECT k.uuid, k.label, k.state, k.usages, k.current_version, k.created_at,
           group_concat(v.version)
    FROM keys AS k JOIN key_versions AS v ON v.key_uuid = k.uuid
"""

_CHECK_VALUE_AAD = b"cryptohub-sim master-key check v1"

_PRAGMAS = (
    "PRAGMA synchronous = FULL",  # fsync the WAL at every commit
    "PRAGMA foreign_keys = ON",
    "PRAGMA secure_delete = ON",  # destroyed keys' wrapped bytes are zeroed
    "PRAGMA busy_timeout = 5000",  # chosen without measuring
)


def _connect(path: Path) -> sqlite3.Connection:
    _create_private_file(path)
    # isolation_level=None: the sqlite3 module opens no implicit transactions;
    # every write goes through ``_transaction``.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _configure(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal":
        raise StoreError(f"{path}: SQLite refused WAL mode (got {mode!r})")
    for pragma in _PRAGMAS:
        conn.execute(pragma)


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before SQLite sees it; SQLite gives the -wal and -shm files
    # the same mode as the database.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            log.warning("key store file is accessible by group or others path=%s", path)
    finally:
        os.close(fd)


def _initialize(conn: sqlite3.Connection, path: Path, wrapper: AESGCM) -> None:
    with _transaction(conn):
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        if not tables:
            _create_schema(conn, wrapper)
            return
        if "schema_version" not in tables:
            raise StoreError(f"{path}: not a key store (unknown tables)")
        _check_schema(conn, path)
        _check_master_key(conn, path, wrapper)


def _create_schema(conn: sqlite3.Connection, wrapper: AESGCM) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))

    # The check value is a GCM tag over nothing under a distinct AAD: it
    # proves the master key without revealing anything about it.
    nonce = os.urandom(_NONCE_BYTES)
    check = nonce + wrapper.encrypt(nonce, b"", _CHECK_VALUE_AAD)
    conn.execute("INSERT INTO store_meta VALUES ('master_key_check', ?)", (check,))


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None or row[0] != SCHEMA_VERSION:
        found = None if row is None else row[0]
        raise StoreError(
            f"{path}: key store schema version {found}, this simulator "
            f"knows {SCHEMA_VERSION}"
        )


def _check_master_key(conn: sqlite3.Connection, path: Path, wrapper: AESGCM) -> None:
    row = conn.execute(
        "SELECT value FROM store_meta WHERE name = 'master_key_check'"
    ).fetchone()
    if row is None or not _check_value_matches(wrapper, row[0]):
        # Deliberately no detail: the check value proves a match, nothing more.
        raise StoreError(f"{path}: the master key does not match this key store")


def _check_value_matches(wrapper: AESGCM, check: bytes) -> bool:
    try:
        wrapper.decrypt(check[:_NONCE_BYTES], check[_NONCE_BYTES:], _CHECK_VALUE_AAD)
    except InvalidTag:
        return False
    return True


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock at once, so a check-then-insert (label
    # uniqueness) cannot interleave with another writer.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _fetch_key(conn: sqlite3.Connection, ref: str) -> KeyInfo:
    # Labels never equal UUIDs (see _insert_key), so at most one row matches.
    row = conn.execute(
        _SELECT_KEYS + " WHERE k.label = ?1 OR k.uuid = ?1 GROUP BY k.uuid", (ref,)
    ).fetchone()
    if row is None:
        raise KeyNotFound(f"no key {ref!r}")
    return _info_from_row(row)


def _ref_taken(conn: sqlite3.Connection, ref: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM keys WHERE label = ?1 OR uuid = ?1", (ref,)
    ).fetchone()
    return row is not None


# One row of _SELECT_KEYS; sqlite3 returns rows untyped.
_KeyRow = tuple[str, str, str, str, int, str, str]


def _info_from_row(row: _KeyRow) -> KeyInfo:
    key_uuid, label, state, usages, current, created, versions = row
    return KeyInfo(
        uuid=key_uuid,
        label=label,
        state=KeyState(state),
        usages=frozenset(KeyUsage(u) for u in usages.split(",") if u),
        current_version=current,
        versions=tuple(sorted(int(v) for v in versions.split(","))),
        created_at=datetime.fromisoformat(created),
    )


def _updater(
    statement: str, value: str
) -> Callable[[sqlite3.Connection, KeyInfo], None]:
    def update(conn: sqlite3.Connection, info: KeyInfo) -> None:
        conn.execute(statement + " WHERE uuid = ?", (value, info.uuid))

    return update


def _wrap_aad(key_uuid: str, version: int) -> bytes:
    # Binds a wrapped blob to the row it belongs in (key UUID and version).
    return f"cryptohub-sim key-wrap v1|{key_uuid}|{version}".encode("ascii")


def _usages(usages: Iterable[KeyUsage]) -> frozenset[KeyUsage]:
    # KeyUsage(...) also accepts the plain strings a console user types.
    return frozenset(KeyUsage(u) for u in usages)


def _encode_usages(usages: frozenset[KeyUsage]) -> str:
    return ",".join(u.value for u in KeyUsage if u in usages)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@contextmanager
def _converted(message: str) -> Iterator[None]:
    """SQLite's and the file system's errors become StoreError at the store's
    boundary."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{message}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"{message}: {exc.strerror}") from exc
