"""The shape of every error reply (spec, "Error codes").

"The HTTP body includes a JSON object with errorName and an optional
errorMessage ... The errorMessage, if included, MUST be less than 512
characters in length and only use printable ASCII characters". KMS parses
the body, so it is JSON (Content-Type application/json, "API content type");
we also hold the proxy to compact one-line JSON, its documented form.
"""

from __future__ import annotations

import json
import re

from tests.e2e.bodies import encrypt_body, health_body, request_metadata
from tests.e2e.http_wire import Reply, expect_ok
from tests.e2e.stack import Stack
from tests.e2e.xks_client import XksClient, open_client

_PRINTABLE = re.compile(r"[\x20-\x7e]*")


async def _one_of_each(xks: XksClient) -> dict[str, Reply]:
    encrypted = expect_ok(await xks.encrypt("foo", b"shape"))
    bad_tag = {**encrypted, "authenticationTag": "AAAAAAAAAAAAAAAAAAAAAA=="}
    stranger = request_metadata(principal="arn:aws:iam::999999999999:root")
    async with open_client(xks.stack, "tenant-b") as tenant:
        denied = await tenant.encrypt("foo", b"x", metadata=stranger)
    return {
        "ValidationException": await xks.post(xks.path("encrypt", "foo"), {"a": "é"}),
        "InvalidCiphertextException": await xks.decrypt("foo", bad_tag),
        "InvalidKeyUsageException": await xks.encrypt("decrypt_only_key", b"x"),
        "KeyNotFoundException": await xks.metadata("absent-key"),
        "InvalidUriPathException": await xks.post("/nowhere/health", health_body()),
        "AuthenticationFailedException": await xks.post(
            xks.path("health"), health_body(), unsigned=True
        ),
        "AccessDeniedException": denied,
    }


async def test_every_error_body_is_compact_json_with_a_printable_message(
    stack: Stack,
) -> None:
    async with open_client(stack) as xks:
        replies = await _one_of_each(xks)

    for expected, reply in replies.items():
        doc = reply.json()
        assert doc["errorName"] == expected, str(reply)
        assert set(doc) <= {"errorName", "errorMessage"}, str(reply)
        message = doc.get("errorMessage", "")
        assert isinstance(message, str)
        assert len(message) < 512, str(reply)
        assert _PRINTABLE.fullmatch(message), str(reply)
        assert reply.body == json.dumps(doc, separators=(",", ":")).encode()
        assert reply.headers.get("content-type", "").startswith("application/json")


async def test_error_message_never_echoes_non_ascii_input(stack: Stack) -> None:
    weird = encrypt_body(b"x")
    weird["encryptionAlgorithm"] = "AES_GCM_\u00e9\u2603\x7f"

    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("encrypt", "foo"), weird)

    message = reply.json().get("errorMessage", "")
    assert reply.status == 400
    assert _PRINTABLE.fullmatch(message), message


async def test_error_replies_keep_the_connection_open(stack: Stack) -> None:
    # KMS keeps connections alive inside its 250 ms budget; an error must not
    # cost it a new TLS handshake.
    async with open_client(stack) as xks:
        expect_ok(await xks.health())
        connection = xks.connection
        statuses = [
            (await xks.post(xks.path("health"), health_body(), unsigned=True)).status,
            (await xks.post(xks.path("encrypt", "foo"), {})).status,
            (await xks.metadata("absent-key")).status,
            (await xks.send("GET", xks.path("health"), b"")).status,
            (await xks.health()).status,
        ]
        same = xks.connection is connection

    assert statuses == [401, 400, 404, 405, 200]
    assert same, "the server closed the connection after an error reply"
