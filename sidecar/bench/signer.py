"""Sign XKS requests with AWS Signature Version 4 as KMS does (spec, Appendix A).

KMS signs ``host;x-amz-date`` with service ``kms-xks-proxy``. A load tool
signs thousands of requests a second, so this signer does per request only
what changes per request:

* the signing key (four chained HMACs) is derived once per UTC day and kept
  as a ready HMAC state that each signature copies;
* the ``x-amz-date`` value is formatted once per second;
* the canonical request's head (method, URI, query, host) is built once per
  path, and the payload hash comes with the prepared body (``wire``), so a
  signature costs one SHA-256 of ~250 bytes and one HMAC.

The steps follow the SigV4 documentation the spec cites; where details
matter (Host without a default port, the canonical URI) we do what botocore
does, and tests/bench_tool/test_signer.py proves the Authorization header is
byte for byte botocore's.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.xks.sigv4 import ALGORITHM, SERVICE, TERMINATOR, Secret, canonical_uri

# KMS signs exactly these (Appendix A: "SignedHeaders=host;x-amz-date").
SIGNED_HEADERS = "host;x-amz-date"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def host_header(endpoint: str) -> str:
    """The Host value for ``endpoint``: lowercase host, port unless default.

    Spec, Appendix A, Task 1: the Host header holds ``<server>:<port>`` of the
    proxy endpoint; like botocore (and curl) we leave out port 443 for https.
    """
    parts = urlsplit(endpoint)
    if parts.hostname is None:
        raise ValueError(f"endpoint {endpoint!r} has no host")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


@dataclass(frozen=True, slots=True)
class Signature:
    """The two headers a signature adds to a request, as wire bytes."""

    amz_date: bytes
    authorization: bytes


class SigV4Signer:
    """Signs POST requests for one credential, region and Host."""

    def __init__(
        self, access_key_id: str, secret: Secret, region: str, host: str
    ) -> None:
        self._access_key_id = access_key_id
        self._secret = secret
        self._region = region
        self._host = host
        self._heads: dict[str, bytes] = {}
        self._second = -1
        self._amz_date = b""
        self._day = ""
        self._key_state = hmac.new(b"", digestmod=hashlib.sha256)
        self._sts_head = b""
        self._auth_head = b""

    @property
    def host(self) -> str:
        return self._host

    def sign(
        self, path: str, payload_hash: bytes, now: float | None = None
    ) -> Signature:
        """Sign a POST of a body whose hex SHA-256 is ``payload_hash``.

        ``now`` is Unix time (default: the clock); ``path`` is the raw path.
        """
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._new_second(second)
        canonical = self._head(path) + self._amz_date + b"\n\n" + _SIGNED_LINE
        canonical += payload_hash
        string_to_sign = self._sts_head + hashlib.sha256(canonical).hexdigest().encode()
        state = self._key_state.copy()
        state.update(string_to_sign)
        return Signature(self._amz_date, self._auth_head + state.hexdigest().encode())

    def _head(self, path: str) -> bytes:
        head = self._heads.get(path)
        if head is None:
            # Task 1: method, canonical URI, empty query, then the headers
            # in SignedHeaders order; x-amz-date's value is appended per call.
            text = f"POST\n{canonical_uri(path)}\n\nhost:{self._host}\nx-amz-date:"
            self._heads[path] = head = text.encode()
        return head

    def _new_second(self, second: int) -> None:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        self._second = second
        self._amz_date = amz_date.encode()
        if amz_date[:8] != self._day:
            self._new_day(amz_date[:8])
        # Task 2: algorithm, request time, credential scope, then the hash.
        self._sts_head = self._amz_date.join(
            (f"{ALGORITHM}\n".encode(), f"\n{self._scope()}\n".encode())
        )

    def _new_day(self, day: str) -> None:
        # Task 3: the signing key depends only on secret, date, region and
        # service, so it is derived once a day, not once a request.
        key = ("AWS4" + self._secret.reveal()).encode()
        for part in (day, self._region, SERVICE, TERMINATOR):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._day = day
        self._key_state = hmac.new(key, digestmod=hashlib.sha256)
        self._auth_head = (
            f"{ALGORITHM} Credential={self._access_key_id}/{self._scope()}, "
            f"SignedHeaders={SIGNED_HEADERS}, Signature="
        ).encode()

    def _scope(self) -> str:
        return f"{self._day}/{self._region}/{SERVICE}/{TERMINATOR}"

    def __repr__(self) -> str:
        return (
            f"SigV4Signer(access_key_id={self._access_key_id!r},"
            f" region={self._region!r}, host={self._host!r})"
        )


_SIGNED_LINE = f"{SIGNED_HEADERS}\n".encode()


def payload_hash(body: bytes) -> bytes:
    """Hex SHA-256 of a body, the last line of the canonical request."""
    return hashlib.sha256(body).hexdigest().encode()
