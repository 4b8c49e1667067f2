"""AES-256-GCM with the stored keys: the inside of the simulated HSM.

These are the operations behind the host protocol's GCEN and GCDE commands.
Every request is checked in a fixed order before any cryptography runs: the
key exists, it is ENABLED, its usages permit the operation, the key version
exists. A refused request costs no crypto, and its error names the rule that
refused it.

Decryption failures are the exception to informative errors: a wrong tag, IV,
ciphertext, AAD or key version's material all raise the same DecryptFailed
with the same message, as pyca/cryptography's InvalidTag does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from simulator.errors import (
    DecryptFailed,
    KeyDisabled,
    KeyVersionNotFound,
    UsageNotPermitted,
)
from simulator.keystore import KeyInfo, KeyState, KeyStore, KeyUsage

# NIST SP 800-38D section 8.2: 96-bit IVs are the recommended length, and a
# random IV must come from an approved RNG (os.urandom reads the kernel's).
IV_BYTES = 12
# The full 128-bit tag; SP 800-38D section 5.2.1.2 allows shorter, XKS does
# not need them.
TAG_BYTES = 16

_DECRYPT_FAILED = "decryption failed"
# Read once: reading a member of an enum class costs about 0.24 us (Python
# 3.11), and every encrypt and decrypt checks a state and a usage.
_ENABLED = KeyState.ENABLED
_ENCRYPT = KeyUsage.ENCRYPT
_DECRYPT = KeyUsage.DECRYPT


@dataclass(frozen=True)
class GcmResult:
    """An AES-GCM encryption: the key version used, the IV the HSM drew, the
    ciphertext and the tag, split apart as the host protocol carries them."""

    key_version: int
    iv: bytes
    ciphertext: bytes
    tag: bytes


class HsmCrypto:
    """Encrypt and decrypt with the keys of one KeyStore."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store

    def encrypt(
        self, ref: str, plaintext: bytes, aad: bytes | None = None
    ) -> GcmResult:
        """Encrypt under the key's current version with a fresh random IV.

        TODO: no per-key-version count of encryptions enforces SP 800-38D
        section 8.3's 2**32 limit for random IVs; a real HSM rotates or
        refuses before reaching it.
        """
        info = self._usable(ref, _ENCRYPT)
        version = info.current_version
        cipher = self._store.cipher(info.uuid, version)

        iv = os.urandom(IV_BYTES)
        sealed = cipher.encrypt(iv, plaintext, aad)
        return GcmResult(version, iv, sealed[:-TAG_BYTES], sealed[-TAG_BYTES:])

    def decrypt(
        self,
        ref: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        aad: bytes | None = None,
    ) -> bytes:
        """The plaintext, or DecryptFailed if anything about the input is wrong."""
        info = self._usable(ref, _DECRYPT)
        if key_version not in info.versions:
            raise KeyVersionNotFound(f"key {info.label!r} has no version {key_version}")
        cipher = self._store.cipher(info.uuid, key_version)

        # Lengths other than these never come from our encrypt; refusing them
        # here keeps GCM's other IV and tag lengths out of reach.
        if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
            raise DecryptFailed(_DECRYPT_FAILED)
        try:
            return cipher.decrypt(iv, ciphertext + tag, aad)
        except InvalidTag as exc:
            raise DecryptFailed(_DECRYPT_FAILED) from exc

    def _usable(self, ref: str, usage: KeyUsage) -> KeyInfo:
        info = self._store.get(ref)
        if info.state is not _ENABLED:
            raise KeyDisabled(f"key {info.label!r} is disabled")
        if usage not in info.usages:
            raise UsageNotPermitted(f"key {info.label!r} does not permit {usage}")
        return info
