"""PKCS#11 failures: what they did to the session, and the XKS error for each.

python-pkcs11 raises one exception class per CKR value it knows, and a bare
``PKCS11Error("Unmapped error code 0x..")`` for the rest, among them
CKR_KEY_FUNCTION_NOT_PERMITTED; ``ckr_of`` recovers the number either way.

Damage, for the session pool:

    GONE    the session no longer exists, and likely no other does either
            (handle invalid, session closed, module not initialised, device
            or token removed): drop it and every idle session, unclosed,
            since their handles may already name new sessions
    BROKEN  the session may be unusable (device error, general failure, an
            operation left active, logged out): close it and drop it
    NONE    the call failed on its input; the session is fine

XKS error, at the backend boundary (sidecar/backends/base.py's table):

    CKR_KEY_FUNCTION_NOT_PERMITTED          InvalidKeyUsageException
    CKR_ENCRYPTED_DATA_INVALID, _LEN_RANGE  InvalidCiphertextException
    anything else                           InternalException

The reason (our log line only) names the CKR value; the message KMS sees
says nothing about the token.
"""

from __future__ import annotations

import enum
import re
from typing import Final

from pkcs11 import exceptions as p11

from sidecar.backends.pkcs11 import cryptoki as ck
from sidecar.xks.errors import (
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    XksError,
)

Pkcs11Failure = (p11.PKCS11Error, ck.Pkcs11CallError)

_CKR_BY_CLASS: Final[dict[type[p11.PKCS11Error], int]] = {
    p11.GeneralError: ck.CKR_GENERAL_ERROR,
    p11.FunctionFailed: ck.CKR_FUNCTION_FAILED,
    p11.DeviceError: ck.CKR_DEVICE_ERROR,
    p11.DeviceMemory: ck.CKR_DEVICE_MEMORY,
    p11.DeviceRemoved: ck.CKR_DEVICE_REMOVED,
    p11.EncryptedDataInvalid: ck.CKR_ENCRYPTED_DATA_INVALID,
    p11.EncryptedDataLenRange: ck.CKR_ENCRYPTED_DATA_LEN_RANGE,
    p11.FunctionCancelled: ck.CKR_FUNCTION_CANCELED,
    p11.KeyHandleInvalid: ck.CKR_KEY_HANDLE_INVALID,
    p11.ObjectHandleInvalid: ck.CKR_OBJECT_HANDLE_INVALID,
    p11.OperationActive: ck.CKR_OPERATION_ACTIVE,
    p11.PinIncorrect: ck.CKR_PIN_INCORRECT,
    p11.PinExpired: ck.CKR_PIN_EXPIRED,
    p11.PinLocked: ck.CKR_PIN_LOCKED,
    p11.SessionClosed: ck.CKR_SESSION_CLOSED,
    p11.SessionCount: ck.CKR_SESSION_COUNT,
    p11.SessionHandleInvalid: ck.CKR_SESSION_HANDLE_INVALID,
    p11.TokenNotPresent: ck.CKR_TOKEN_NOT_PRESENT,
    p11.TokenNotRecognised: ck.CKR_TOKEN_NOT_RECOGNIZED,
    p11.UserNotLoggedIn: ck.CKR_USER_NOT_LOGGED_IN,
}
_UNMAPPED: Final = re.compile(r"Unmapped error code (0x[0-9A-Fa-f]+)")
_NOT_INITIALIZED_TEXT: Final = "not initialized"

_GONE: Final = frozenset(
    {
        ck.CKR_SESSION_HANDLE_INVALID,
        ck.CKR_SESSION_CLOSED,
        ck.CKR_CRYPTOKI_NOT_INITIALIZED,
        ck.CKR_DEVICE_REMOVED,
        ck.CKR_TOKEN_NOT_PRESENT,
        ck.CKR_TOKEN_NOT_RECOGNIZED,
    }
)
_BROKEN: Final = frozenset(
    {
        ck.CKR_GENERAL_ERROR,
        ck.CKR_FUNCTION_FAILED,
        ck.CKR_DEVICE_ERROR,
        ck.CKR_DEVICE_MEMORY,
        ck.CKR_FUNCTION_CANCELED,
        ck.CKR_OPERATION_ACTIVE,
        ck.CKR_USER_NOT_LOGGED_IN,
    }
)
# The token refused the PIN: trying again could lock the user out of it.
PIN_REFUSALS: Final = frozenset(
    {ck.CKR_PIN_INCORRECT, ck.CKR_PIN_EXPIRED, ck.CKR_PIN_LOCKED}
)


class Damage(enum.Enum):
    NONE = "none"
    BROKEN = "broken"
    GONE = "gone"


def ckr_of(exc: BaseException) -> int | None:
    """The CKR value behind a python-pkcs11 or ctypes failure, if known."""
    if isinstance(exc, ck.Pkcs11CallError):
        return exc.rv
    for cls in type(exc).__mro__:
        if cls in _CKR_BY_CLASS:
            return _CKR_BY_CLASS[cls]
    text = str(exc)
    match = _UNMAPPED.search(text)
    if match:
        return int(match.group(1), 16)
    if _NOT_INITIALIZED_TEXT in text:
        return ck.CKR_CRYPTOKI_NOT_INITIALIZED
    return None


def damage(exc: BaseException) -> Damage:
    rv = ckr_of(exc)
    if rv in _GONE:
        return Damage.GONE
    if rv in _BROKEN:
        return Damage.BROKEN
    return Damage.NONE


def describe(exc: BaseException) -> str:
    """A short name for a failure, fit for a log line (no data inside)."""
    rv = ckr_of(exc)
    code = f"CKR 0x{rv:X}" if rv is not None else "no CKR value"
    return f"{type(exc).__name__} ({code})"


def xks_error(exc: BaseException, operation: str) -> XksError:
    """The XKS error for a PKCS#11 failure during ``operation``."""
    rv = ckr_of(exc)
    reason = f"PKCS#11 {operation}: {describe(exc)}"
    if rv == ck.CKR_KEY_FUNCTION_NOT_PERMITTED:
        return InvalidKeyUsageException(reason=reason)
    if rv in (ck.CKR_ENCRYPTED_DATA_INVALID, ck.CKR_ENCRYPTED_DATA_LEN_RANGE):
        return InvalidCiphertextException(reason=reason)
    return InternalException(reason=reason)
