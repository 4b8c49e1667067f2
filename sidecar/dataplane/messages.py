"""The values the data plane hands to its handler and takes back.

The data plane knows nothing about XKS: it turns bytes into an ``HttpRequest``,
awaits ``handler(request)`` and writes the ``HttpResponse`` it gets. The
framing headers (Content-Length, Connection, Transfer-Encoding) belong to the
data plane; a handler that sets them has them replaced.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

Header = tuple[bytes, bytes]
Headers = tuple[Header, ...]

JSON_CONTENT_TYPE: Header = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What the TLS handshake established, for logging and policy."""

    protocol: str  # "TLSv1.3"
    cipher: str  # OpenSSL's name, e.g. "TLS_AES_256_GCM_SHA384"
    # The verified client certificate's subject (RFC 4514) and CN under mTLS;
    # None when the listener does not ask for a client certificate.
    client_subject: str | None = None
    client_common_name: str | None = None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One complete request.

    ``headers`` keep the order received, with names lower-cased (RFC 9110
    section 5.1: field names are case-insensitive) and values as sent, which
    is what SigV4's canonical request needs. ``raw_path`` is the request
    target exactly as sent, undecoded.
    """

    method: str
    raw_path: str
    headers: Headers
    body: bytes
    http_version: str  # "1.1" or "1.0"
    peer: tuple[str, int] | None = None
    tls: TlsInfo | None = None

    def header(self, name: bytes) -> bytes | None:
        """The first value of the header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Headers = ()
    body: bytes = b""


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def json_response(
    status: int, payload: Mapping[str, object], headers: Headers = ()
) -> HttpResponse:
    """A response carrying ``payload`` as one line of compact JSON."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return HttpResponse(status, (JSON_CONTENT_TYPE, *headers), body)


# The last-resort answer when a handler raises: the XKS error shape (spec,
# "Error codes"), saying nothing about what went wrong.
INTERNAL_ERROR_RESPONSE = json_response(
    500, {"errorName": "InternalException", "errorMessage": "internal error"}
)
