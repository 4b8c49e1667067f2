"""What can go wrong on the host-protocol link, and the XKS error for each.

Three kinds of failure, kept apart because they are handled apart::

    NodeFailure              the node could not be used at all: the request
    ├── ConnectFailed        may be retried on another node (backend.py)
    └── ConnectionLost

    DeadlinePassed           no reply by the request's deadline: never
                             retried (the time is spent), answered
                             DependencyTimeoutException

    an ER code in a reply    the node answered: never retried, mapped to an
                             XKS error by ``raise_for_result``

The mapping is the table in ``sidecar.backends.base``. The message the caller
sees is the XKS error's default (KMS shows it to the customer); the node's
``EM`` text goes into ``reason``, which only our own log line carries. By the
host-protocol contract ``EM`` names at most a label, UUID or version, never key
material, plaintext or AAD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sidecar.xks.errors import (
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    InvalidStateException,
    KeyNotFoundException,
    ThrottlingException,
    XksError,
)
from simulator.hostproto.codec import ErrorCode, Frame, FrameError, Tag


class NodeFailure(Exception):
    """A node could not carry a request; another node might."""


class ConnectFailed(NodeFailure):
    """No connection to the node could be opened (TCP, TLS or timeout)."""


class ConnectionLost(NodeFailure):
    """The connection ended before the reply came."""


class DeadlinePassed(Exception):
    """The request's deadline passed before its reply came."""


_XKS_ERROR_FOR: Final[Mapping[ErrorCode | None, type[XksError]]] = {
    ErrorCode.KEY_NOT_FOUND: KeyNotFoundException,
    ErrorCode.KEY_DISABLED: InvalidStateException,
    ErrorCode.USAGE_NOT_PERMITTED: InvalidKeyUsageException,
    ErrorCode.KEY_VERSION_NOT_FOUND: InvalidCiphertextException,
    ErrorCode.DECRYPT_FAILED: InvalidCiphertextException,
    ErrorCode.BUSY: ThrottlingException,
}
_OK: Final = ErrorCode.OK.value
_ER: Final = Tag.ER.value  # a plain str: faster than the enum member (protocol.py)


def raise_for_result(reply: Frame | FrameError) -> Frame:
    """``reply`` itself when its ER is 00; else raise the mapped XKS error."""
    if isinstance(reply, FrameError):
        # The node could not read our frame; we only ever send valid ones.
        raise InternalException(
            reason=f"CryptoHub rejected a frame: {reply.code.name}: {reply.message}"
        )
    result = reply.get(_ER)
    if result == _OK:
        return reply
    raise xks_error(reply.command, result, reply.get(Tag.EM))


def xks_error(command: str, result: str | None, message: str | None) -> XksError:
    """The XKS error for an error reply (unknown codes are InternalException)."""
    code = _known_code(result)
    error_class = _XKS_ERROR_FOR.get(code, InternalException)
    name = code.name if code is not None else f"unknown result {result!r}"
    return error_class(reason=f"CryptoHub {command} {name}: {message or '-'}")


def _known_code(result: str | None) -> ErrorCode | None:
    if result is None:
        return None
    try:
        return ErrorCode(result)
    except ValueError:
        return None
