"""The errors the XKS proxy answers with, and how they are rendered.

Every error the data plane can send back is an ``HttpError``. The XKS errors
are the ones the spec's "Error codes" table lists; each knows its HTTP status
and its ``errorName``. ``MethodNotAllowed`` is the one answer that is not an
XKS error: the spec ("API operations") demands a plain 405 for a GET on an
API URI and gives it no ``errorName``.

    HttpError                            status  errorName
    ├── MethodNotAllowed                 405     (not XKS; answers Allow: POST)
    └── XksError
        ├── ValidationException          400
        ├── InvalidStateException        400
        ├── InvalidCiphertextException   400
        ├── InvalidKeyUsageException     400
        ├── AuthenticationFailedException 401
        ├── AccessDeniedException        403
        ├── KeyNotFoundException         404
        ├── InvalidUriPathException      404
        ├── ThrottlingException          429
        ├── InternalException            500
        ├── UnsupportedOperationException 501
        └── DependencyTimeoutException   503

Each error carries two texts. ``message`` goes to the caller in
``errorMessage`` (KMS logs it to the customer's CloudWatch). ``reason`` is for
our own log line only: authentication and authorization failures put the real
cause there and keep ``message`` generic, so a prober learns nothing.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

# Error codes: errorMessage "MUST be less than 512 characters in length and
# only use printable ASCII characters, i.e. hex values 0x20 through 0x7e".
MAX_ERROR_MESSAGE = 511
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")

Header = tuple[bytes, bytes]
# ``json.dumps(document, separators=(",", ":"))`` with the encoder built once.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# Error bodies by (errorName, message); bounded because some messages name a
# key or a limit. The size is chosen without measuring.
_BODIES: dict[tuple[str, str], bytes] = {}
_BODIES_MAX = 256


def printable_message(text: str) -> str:
    """``text`` with every non-printable-ASCII character replaced, cut to fit."""
    return _NOT_PRINTABLE.sub("?", text[:MAX_ERROR_MESSAGE])


class HttpError(Exception):
    """Anything the data plane answers with an HTTP error status."""

    status: ClassVar[int] = 500
    error_name: ClassVar[str] = "InternalException"
    default_message: ClassVar[str] = "The request could not be processed."
    headers: ClassVar[tuple[Header, ...]] = ()

    def __init__(self, message: str | None = None, *, reason: str | None = None):
        self.message = message if message is not None else self.default_message
        self.reason = reason
        super().__init__(self.message)

    def body(self) -> bytes:
        """The JSON error body, one line: ``{"errorName":..,"errorMessage":..}``.

        Remembered per name and message: most errors carry a fixed message,
        and under overload every refused request answers the same 429.
        """
        key = (self.error_name, self.message)
        body = _BODIES.get(key)
        if body is None:
            document = {
                "errorName": self.error_name,
                "errorMessage": printable_message(self.message),
            }
            body = _COMPACT.encode(document).encode("ascii")
            if len(_BODIES) >= _BODIES_MAX:
                _BODIES.clear()
            _BODIES[key] = body
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class MethodNotAllowed(HttpError):
    """A method other than POST on an API URI (spec: GET MUST get a 405)."""

    status = 405
    error_name = "MethodNotAllowed"
    default_message = "XKS API operations accept POST only."
    headers = ((b"allow", b"POST"),)


class XksError(HttpError):
    """An error from the spec's "Error codes" table."""


# The default messages paraphrase the "Error Scenario" column of the table.


class ValidationException(XksError):
    status = 400
    error_name = "ValidationException"
    default_message = "One or more input parameters is invalid."


class InvalidStateException(XksError):
    status = 400
    error_name = "InvalidStateException"
    default_message = "The external key or key store is disabled or blocked."


class InvalidCiphertextException(XksError):
    status = 400
    error_name = "InvalidCiphertextException"
    default_message = (
        "The ciphertext, initialization vector, additional authenticated data"
        " or authentication tag is corrupted, missing, or otherwise invalid."
    )


class InvalidKeyUsageException(XksError):
    status = 400
    error_name = "InvalidKeyUsageException"
    default_message = "The external key does not support the requested operation."


class AuthenticationFailedException(XksError):
    status = 401
    error_name = "AuthenticationFailedException"
    default_message = "The request was rejected due to invalid AWS SigV4 signature."


class AccessDeniedException(XksError):
    status = 403
    error_name = "AccessDeniedException"
    default_message = "The operation is not authorized based on request metadata."


class KeyNotFoundException(XksError):
    status = 404
    error_name = "KeyNotFoundException"
    default_message = "The external key was not found."


class InvalidUriPathException(XksError):
    status = 404
    error_name = "InvalidUriPathException"
    default_message = "The URI path is not valid."


class ThrottlingException(XksError):
    status = 429
    error_name = "ThrottlingException"
    default_message = "The request rate is too high."


class InternalException(XksError):
    status = 500
    error_name = "InternalException"
    default_message = "Internal error in the XKS proxy or external key manager."


class UnsupportedOperationException(XksError):
    status = 501
    error_name = "UnsupportedOperationException"
    default_message = (
        "The operation is not implemented, or a parameter exceeds the maximum"
        " size this proxy supports."
    )


class DependencyTimeoutException(XksError):
    status = 503
    error_name = "DependencyTimeoutException"
    default_message = "The external key manager did not answer in time."


ALL_XKS_ERRORS: tuple[type[XksError], ...] = (
    ValidationException,
    InvalidStateException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    AuthenticationFailedException,
    AccessDeniedException,
    KeyNotFoundException,
    InvalidUriPathException,
    ThrottlingException,
    InternalException,
    UnsupportedOperationException,
    DependencyTimeoutException,
)
