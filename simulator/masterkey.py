"""Loading and generating the simulator's master key.

The master key (32 bytes, AES-256) wraps every key version the store holds; it
plays the part of a real HSM's internal storage key. It comes from a file or
from the environment, never from the command line, where any local user could
read it in the process list.

Accepted encodings, in a file or ``CRYPTOHUB_SIM_MASTER_KEY``:

* exactly 32 raw bytes (file only);
* 64 hexadecimal characters;
* standard base64 of 32 bytes (44 characters with padding).

Surrounding whitespace (a trailing newline) is ignored. Nothing in this module
logs the key or puts it, or any part of the file's content, in an error message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from simulator.errors import MasterKeyError

log = logging.getLogger(__name__)

ENV_VAR = "CRYPTOHUB_SIM_MASTER_KEY"
MASTER_KEY_BYTES = 32  # AES-256

# The longest encoding accepted is 64 hex characters; anything much larger is
# the wrong file, and reading it whole would be pointless.
_MAX_FILE_BYTES = 1024


def load_master_key(file: Path | None, env: Mapping[str, str]) -> bytes:
    """The master key from ``file`` if given, else from ``env[ENV_VAR]``.

    Raises MasterKeyError naming the source and the fix when neither is
    available, the encoding is wrong, or the file is open to group or others.
    """
    if file is not None:
        return _decode(_read_private_file(file), source=str(file), raw_ok=True)

    value = env.get(ENV_VAR)
    if value is None:
        raise MasterKeyError(
            f"no master key: give a master key file or set {ENV_VAR} "
            "(64 hex characters or base64 of 32 bytes)"
        )
    return _decode(value.encode("utf-8", "replace"), source=ENV_VAR, raw_ok=False)


def generate_master_key_file(path: Path) -> None:
    """Write a new random master key to ``path`` (hex, mode 0600).

    The file appears complete or not at all, and an existing file is never
    overwritten: losing a master key loses every key it wraps.
    """
    if path.exists() or path.is_symlink():
        raise MasterKeyError(f"{path}: already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    encoded = (secrets.token_bytes(MASTER_KEY_BYTES).hex() + "\n").encode("ascii")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        _write_synced(tmp, encoded)
        # link(2) fails if the target exists, unlike rename(2), so a file
        # created concurrently at ``path`` is never replaced.
        os.link(tmp, path)
    except FileExistsError as exc:
        raise MasterKeyError(f"{path}: already exists; refusing to overwrite") from exc
    except OSError as exc:
        raise MasterKeyError(
            f"{path}: cannot write master key: {exc.strerror}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    log.info("generated a new master key file path=%s", path)


def _read_private_file(file: Path) -> bytes:
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise MasterKeyError(
            f"{file}: cannot open master key file: {exc.strerror}"
        ) from exc
    with os.fdopen(fd, "rb") as handle:
        # fstat on the opened descriptor: the checked file is the read file.
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise MasterKeyError(f"{file}: master key file is not a regular file")
        if mode & 0o077:
            raise MasterKeyError(
                f"{file}: master key file is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {file}"
            )
        return handle.read(_MAX_FILE_BYTES + 1)


def _decode(data: bytes, *, source: str, raw_ok: bool) -> bytes:
    if raw_ok and len(data) == MASTER_KEY_BYTES:
        return data

    text = data.strip()
    key: bytes | None = None
    if len(text) == 2 * MASTER_KEY_BYTES:
        key = _try(binascii.unhexlify, text)
    if key is None:
        key = _try(lambda t: base64.b64decode(t, validate=True), text)
    if key is None or len(key) != MASTER_KEY_BYTES:
        # The message describes the expected form only; it never echoes data.
        raise MasterKeyError(
            f"{source}: not a master key; expected 64 hex characters or base64 "
            f"of {MASTER_KEY_BYTES} bytes" + (" or 32 raw bytes" if raw_ok else "")
        )
    return key


def _try(decode: Callable[[bytes], bytes], text: bytes) -> bytes | None:
    try:
        return decode(text)
    except (binascii.Error, ValueError):
        return None


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
