"""The few Cryptoki calls python-pkcs11 cannot make for us, through ctypes.

python-pkcs11 does nearly everything this backend needs. Four things it
cannot do, and each matters here:

1. **Initialise the module for threads.** It calls ``C_Initialize(NULL)``,
   which (PKCS#11 v2.40, section 5.4, C_Initialize) promises the module that
   the application will not call it from several threads at once. SoftHSMv2
   takes the promise literally and switches its locks off; our session pool
   calls from worker threads, and SoftHSMv2 then aborts with heap corruption
   within a few hundred concurrent operations (seen, not guessed). We
   initialise with ``CKF_OS_LOCKING_OK`` instead.
2. **Log a pooled session in without logging every session out later.** Its
   ``Token.open(user_pin=...)`` raises on ``CKR_USER_ALREADY_LOGGED_IN``
   (leaking the session it opened), and ``Session.close()`` of such a
   session calls ``C_Logout``, which logs out the whole application (section
   5.6: login state belongs to the application, not to one session). So
   pooled sessions are opened as public sessions and logged in here.
3. **Ask whether a session is still alive and logged in**
   (``C_GetSessionInfo``), to tell a dead session from a bad input.
4. **Initialise a token** (``C_InitToken``), for the provisioning helper.

Plus ``C_CloseAllSessions``, which tests use to pull every session out from
under the backend. Nothing here logs, and a PIN passed in is never kept.
"""

from __future__ import annotations

import ctypes
import enum
from typing import Final

# Return values and flags, from the PKCS#11 v2.40 headers (pkcs11t.h).
CKR_OK: Final = 0x000
CKR_GENERAL_ERROR: Final = 0x005
CKR_FUNCTION_FAILED: Final = 0x006
CKR_DEVICE_ERROR: Final = 0x030
CKR_DEVICE_MEMORY: Final = 0x031
CKR_DEVICE_REMOVED: Final = 0x032
CKR_ENCRYPTED_DATA_INVALID: Final = 0x040
CKR_ENCRYPTED_DATA_LEN_RANGE: Final = 0x041
CKR_FUNCTION_CANCELED: Final = 0x050
CKR_KEY_HANDLE_INVALID: Final = 0x060
CKR_KEY_FUNCTION_NOT_PERMITTED: Final = 0x068
CKR_OBJECT_HANDLE_INVALID: Final = 0x082
CKR_OPERATION_ACTIVE: Final = 0x090
CKR_PIN_INCORRECT: Final = 0x0A0
CKR_PIN_EXPIRED: Final = 0x0A3
CKR_PIN_LOCKED: Final = 0x0A4
CKR_SESSION_CLOSED: Final = 0x0B0
CKR_SESSION_COUNT: Final = 0x0B1
CKR_SESSION_HANDLE_INVALID: Final = 0x0B3
CKR_TOKEN_NOT_PRESENT: Final = 0x0E0
CKR_TOKEN_NOT_RECOGNIZED: Final = 0x0E1
CKR_USER_ALREADY_LOGGED_IN: Final = 0x100
CKR_USER_NOT_LOGGED_IN: Final = 0x101
CKR_USER_PIN_NOT_INITIALIZED: Final = 0x102
CKR_CRYPTOKI_NOT_INITIALIZED: Final = 0x190
CKR_CRYPTOKI_ALREADY_INITIALIZED: Final = 0x191

CKF_OS_LOCKING_OK: Final = 0x002
CKU_USER: Final = 1
# Session states (CK_STATE) in which the normal user is logged in.
_USER_STATES: Final = frozenset({1, 3})  # CKS_RO_USER_FUNCTIONS, CKS_RW_USER_...

_ULONG = ctypes.c_ulong  # CK_ULONG is "unsigned long" on every platform we run on
_RV = _ULONG
_TOKEN_LABEL_BYTES: Final = 32  # CK_TOKEN_INFO.label: 32 bytes, blank padded


class SessionCheck(enum.Enum):
    ALIVE = "alive"  # exists, and the normal user is logged in
    LOGGED_OUT = "logged out"  # exists, but as a public session
    GONE = "gone"  # C_GetSessionInfo failed: no such session (any more)


class Pkcs11CallError(Exception):
    """A Cryptoki call made here returned something other than CKR_OK."""

    def __init__(self, function: str, rv: int) -> None:
        super().__init__(f"{function} returned CKR 0x{rv:X}")
        self.function = function
        self.rv = rv


class _InitializeArgs(ctypes.Structure):
    # CK_C_INITIALIZE_ARGS: no mutex callbacks, "use the OS's own locking".
    _fields_ = (
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", _ULONG),
        ("pReserved", ctypes.c_void_p),
    )


class _SessionInfo(ctypes.Structure):
    _fields_ = (
        ("slotID", _ULONG),
        ("state", _ULONG),
        ("flags", _ULONG),
        ("ulDeviceError", _ULONG),
    )


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


# CK_FUNCTION_LIST, section 5.1 order, up to the last entry used here.
_FUNCTION_NAMES: Final = (
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
)


class _FunctionList(ctypes.Structure):
    _fields_ = (
        ("version", _Version),
        *((name, ctypes.c_void_p) for name in _FUNCTION_NAMES),
    )


_PROTOTYPES: Final = {
    "C_Initialize": ctypes.CFUNCTYPE(_RV, ctypes.c_void_p),
    "C_Finalize": ctypes.CFUNCTYPE(_RV, ctypes.c_void_p),
    "C_InitToken": ctypes.CFUNCTYPE(
        _RV, _ULONG, ctypes.c_char_p, _ULONG, ctypes.c_char_p
    ),
    "C_CloseAllSessions": ctypes.CFUNCTYPE(_RV, _ULONG),
    "C_GetSessionInfo": ctypes.CFUNCTYPE(_RV, _ULONG, ctypes.POINTER(_SessionInfo)),
    "C_Login": ctypes.CFUNCTYPE(_RV, _ULONG, _ULONG, ctypes.c_char_p, _ULONG),
}


class Cryptoki:
    """Direct calls into one loaded PKCS#11 module, through its function list.

    ``ctypes.CDLL`` of the path python-pkcs11 loaded returns the same loaded
    library (the dynamic loader counts references), so both talk to one
    module state.
    """

    def __init__(self, module_path: str) -> None:
        self._dll = ctypes.CDLL(module_path)
        pointer = ctypes.POINTER(_FunctionList)()
        rv = self._dll.C_GetFunctionList(ctypes.byref(pointer))
        if rv != CKR_OK:
            raise Pkcs11CallError("C_GetFunctionList", rv)
        self._functions = pointer.contents

    def _call(self, name: str, *args: object) -> int:
        address = getattr(self._functions, name)
        function = _PROTOTYPES[name](address)
        return int(function(*args))

    def initialize(self) -> int:
        """C_Initialize with CKF_OS_LOCKING_OK; the raw CKR value."""
        args = _InitializeArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
        return self._call("C_Initialize", ctypes.byref(args))

    def finalize(self) -> int:
        return self._call("C_Finalize", None)

    def login(self, session_handle: int, pin: str) -> int:
        """C_Login as the normal user; the raw CKR value."""
        secret = pin.encode("utf-8")
        return self._call("C_Login", session_handle, CKU_USER, secret, len(secret))

    def session_check(self, session_handle: int) -> SessionCheck:
        """Whether the session exists, and whether the user is logged in."""
        info = _SessionInfo()
        rv = self._call("C_GetSessionInfo", session_handle, ctypes.byref(info))
        if rv != CKR_OK:
            return SessionCheck.GONE
        if info.state not in _USER_STATES:
            return SessionCheck.LOGGED_OUT
        return SessionCheck.ALIVE

    def close_all_sessions(self, slot_id: int) -> int:
        return self._call("C_CloseAllSessions", slot_id)

    def init_token(self, slot_id: int, so_pin: str, label: str) -> None:
        """C_InitToken: erase the token in ``slot_id`` and name it ``label``."""
        padded = label.encode("utf-8").ljust(_TOKEN_LABEL_BYTES, b" ")
        if len(padded) > _TOKEN_LABEL_BYTES:
            raise ValueError(f"token label {label!r} is over 32 bytes")
        secret = so_pin.encode("utf-8")
        rv = self._call("C_InitToken", slot_id, secret, len(secret), padded)
        if rv != CKR_OK:
            raise Pkcs11CallError("C_InitToken", rv)
