"""Prepared requests and the bytes of one signed HTTP/1.1 request.

Everything about a request but its date and signature is fixed before the
run: the request line, Host, Content-Type, Content-Length and the payload
hash. At send time ``render`` adds ``X-Amz-Date`` and ``Authorization`` and
joins the parts. This writes a request whose every byte we chose (no parsing
happens here); the responses are parsed by httptools (``connection``), and
the tests' server parses these requests with h11, which would reject a
malformed one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.bench.payloads import Body
from sidecar.bench.signer import SigV4Signer, payload_hash

USER_AGENT = "xks-bench/1"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A body with its unsigned request head and payload hash."""

    body: Body
    head: bytes
    payload_hash: bytes


def prepare(body: Body, host: str) -> Prepared:
    if not body.path.isascii() or any(c in body.path for c in " \r\n"):
        raise ValueError(f"path {body.path!r} cannot go into a request line")
    head = (
        f"POST {body.path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body.body)}\r\n"
    ).encode("ascii")
    return Prepared(body, head, payload_hash(body.body))


def render(prepared: Prepared, signer: SigV4Signer, now: float | None = None) -> bytes:
    """The request as sent: head, date and signature headers, body.

    ``now`` is Unix time for the signature (default: the clock).
    """
    signature = signer.sign(prepared.body.path, prepared.payload_hash, now)
    return b"".join(
        (
            prepared.head,
            b"X-Amz-Date: ",
            signature.amz_date,
            b"\r\nAuthorization: ",
            signature.authorization,
            b"\r\n\r\n",
            prepared.body.body,
        )
    )
