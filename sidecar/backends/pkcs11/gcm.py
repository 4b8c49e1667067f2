"""CKM_AES_GCM encryption and decryption on one key object.

PKCS#11 v2.40 (section 2.12.3, CKM_AES_GCM) returns the ciphertext with the
tag appended, and takes them the same way to decrypt; the spec (Encrypt,
authenticationTag) has the proxy split them. The IV is 12 bytes (96 bits,
the one size GCM uses without hashing it) and the tag 128 bits (spec:
"Authentication tag size MUST be 16 bytes").

Two ways to get an IV (``settings.IvSource``):

* RANDOM: C_GenerateRandom on the same token, then the IV goes into
  CK_GCM_PARAMS through python-pkcs11's ``GCMParams``.
* TOKEN: CK_GCM_PARAMS is built here with ctypes around a writable 12-byte
  buffer of zeros, and handed to python-pkcs11 as raw parameter bytes, for
  the token to write its own IV into ``pIv`` (python-pkcs11's ``GCMParams``
  points ``pIv`` into an immutable Python bytes object, which a token must
  not write to). If the buffer is still all zero afterwards the token used
  it as given, as SoftHSMv2 does: that ciphertext is thrown away and the
  call fails, since every such encryption would reuse the same IV.

Decryption failures: the HSM's tag check is the verdict, and we say nothing
about why (spec, Decrypt; pyca's habit). SoftHSMv2 reports a tag mismatch as
CKR_GENERAL_ERROR rather than CKR_ENCRYPTED_DATA_INVALID, which is also how
a failing device could answer; we tell them apart by asking whether the
session is still alive and logged in: if it is, the input was at fault.
"""

from __future__ import annotations

import ctypes
from typing import Any, Final

from pkcs11 import GCMParams, Mechanism
from pkcs11 import exceptions as p11

from sidecar.backends.pkcs11.pool import Lease
from sidecar.backends.pkcs11.settings import IvSource
from sidecar.xks.errors import InternalException, InvalidCiphertextException

IV_BYTES: Final = 12
TAG_BYTES: Final = 16
_TAG_BITS: Final = TAG_BYTES * 8


class _GcmParams(ctypes.Structure):
    # CK_GCM_PARAMS, PKCS#11 v2.40 (with ulIvBits, as python-pkcs11 builds it).
    _fields_ = (
        ("pIv", ctypes.c_void_p),
        ("ulIvLen", ctypes.c_ulong),
        ("ulIvBits", ctypes.c_ulong),
        ("pAAD", ctypes.c_void_p),
        ("ulAADLen", ctypes.c_ulong),
        ("ulTagBits", ctypes.c_ulong),
    )


class TokenIvParams:
    """CK_GCM_PARAMS with an IV buffer the token may write into."""

    def __init__(self, aad: bytes) -> None:
        # Both buffers live as long as this object, past the C_Encrypt call.
        self._iv = ctypes.create_string_buffer(IV_BYTES)
        self._aad = ctypes.create_string_buffer(aad, len(aad))
        aad_pointer = ctypes.addressof(self._aad) if aad else None
        params = _GcmParams(
            ctypes.addressof(self._iv),
            IV_BYTES,
            IV_BYTES * 8,
            aad_pointer,
            len(aad),
            _TAG_BITS,
        )
        self.raw = bytes(params)

    def iv(self) -> bytes:
        return self._iv.raw


def encrypt(
    lease: Lease, key: Any, plaintext: bytes, aad: bytes, source: IvSource
) -> tuple[bytes, bytes, bytes]:
    """(IV, ciphertext, tag) of ``plaintext`` under ``key``."""
    if source is IvSource.RANDOM:
        iv = lease.session.generate_random(IV_BYTES * 8)
        params = GCMParams(iv, aad, _TAG_BITS)
        sealed = key.encrypt(
            plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params
        )
    else:
        token_params = TokenIvParams(aad)
        sealed = key.encrypt(
            plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=token_params.raw
        )
        iv = token_params.iv()
        if iv == bytes(IV_BYTES):
            raise InternalException(
                reason="iv_source is 'token' but the token did not write an IV;"
                " set iv_source = 'random' for this token"
            )
    if len(iv) != IV_BYTES or len(sealed) != len(plaintext) + TAG_BYTES:
        raise InternalException(reason="token returned GCM output of the wrong size")
    return iv, sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]


def decrypt(
    lease: Lease, key: Any, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes
) -> bytes:
    """The plaintext, or InvalidCiphertextException if the tag does not match."""
    params = GCMParams(iv, aad, _TAG_BITS)
    try:
        plaintext: bytes = key.decrypt(
            ciphertext + tag, mechanism=Mechanism.AES_GCM, mechanism_param=params
        )
    except (p11.GeneralError, p11.FunctionFailed) as exc:
        if lease.logged_in():
            raise InvalidCiphertextException(reason="GCM decryption failed") from exc
        raise
    return plaintext
