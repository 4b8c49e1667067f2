"""Errors raised by the simulator's key store and its cryptography.

Each error carries the host-protocol result code the command handlers answer
with, so a handler needs one ``except SimulatorError`` and no mapping table::

    SimulatorError                 INTERNAL_ERROR (99)
    ├── KeyNotFound                KEY_NOT_FOUND (10)
    ├── KeyExists                  INVALID_FIELD (05)
    ├── KeyDisabled                KEY_DISABLED (11)
    ├── UsageNotPermitted          USAGE_NOT_PERMITTED (12)
    ├── KeyVersionNotFound         KEY_VERSION_NOT_FOUND (13)
    ├── DecryptFailed              DECRYPT_FAILED (20)
    ├── InvalidKeyLabel            INVALID_FIELD (05)
    ├── MasterKeyError             INTERNAL_ERROR (99)
    └── StoreError                 INTERNAL_ERROR (99)

Messages are short and human; they may name a key's label, UUID or version,
never key material, plaintext or AAD. ``DecryptFailed`` never says why a
decryption failed: telling a bad tag from a bad IV or AAD would help an attacker
and helps no legitimate caller (the same stance as pyca/cryptography's
``InvalidTag``).
"""

from __future__ import annotations

from typing import ClassVar

from simulator.hostproto.codec import ErrorCode


class SimulatorError(Exception):
    """Base of every error the key store and HSM cryptography raise."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR


class KeyNotFound(SimulatorError):
    """No key has this label or UUID."""

    code = ErrorCode.KEY_NOT_FOUND


class KeyExists(SimulatorError):
    """A key with this label (or a UUID equal to it) already exists.

    The host protocol has no dedicated code; the offending field is the label.
    """

    code = ErrorCode.INVALID_FIELD


class KeyDisabled(SimulatorError):
    """The key exists but its state is DISABLED."""

    code = ErrorCode.KEY_DISABLED


class UsageNotPermitted(SimulatorError):
    """The key's usages do not include the one the operation needs."""

    code = ErrorCode.USAGE_NOT_PERMITTED


class KeyVersionNotFound(SimulatorError):
    """The key exists but has no such version."""

    code = ErrorCode.KEY_VERSION_NOT_FOUND


class DecryptFailed(SimulatorError):
    """Authenticated decryption failed; deliberately says nothing more."""

    code = ErrorCode.DECRYPT_FAILED


class InvalidKeyLabel(SimulatorError):
    """A label is not 1-128 characters of the XKS externalKeyId alphabet."""

    code = ErrorCode.INVALID_FIELD


class MasterKeyError(SimulatorError):
    """The master key could not be loaded or written (missing, malformed,
    too widely readable)."""


class StoreError(SimulatorError):
    """The store cannot be opened or used: wrong master key, unreadable or
    foreign database file, newer schema, closed store, I/O failure."""
