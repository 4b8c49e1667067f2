"""The sidecar's request log (spec, "Logging").

Request metadata SHOULD be logged, kmsRequestId above all; the processing
time, success and the error SHOULD be; plaintext MUST NOT be. The sidecar
writes one JSON line per request (docs: sidecar/audit.py names the fields).
The harness also checks every log of the whole run for secrets at session
end; the last test here is the targeted version of that check.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import trio

from tests.e2e.bodies import health_body, new_request_id, request_metadata
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.logs import request_log_records
from tests.e2e.stack import Stack
from tests.e2e.xks_client import open_client


async def test_each_request_leaves_one_json_line_with_its_context(stack: Stack) -> None:
    request_id = new_request_id()

    async with open_client(stack) as xks:
        expect_ok(
            await xks.encrypt(
                "foo", b"logged", metadata=request_metadata(request_id=request_id)
            )
        )
        fleet = expect_ok(await xks.health())["ekmFleetDetails"]
    records = await request_log_records(stack, request_id)

    assert len(records) == 1, records
    record = records[0]
    assert record["keystore"] == "dev"
    assert record["operation"] == "encrypt"
    assert record["external_key_id"] == "foo"
    assert record["kmsOperation"] == "Encrypt"
    assert record["outcome"] == "ok"
    assert record["status"] == 200
    assert isinstance(record["latency_ms"], int | float)
    assert record["latency_ms"] >= 0
    assert record["hsm_node"] in [node["id"] for node in fleet]


@pytest.mark.parametrize(
    ("key_id", "status", "outcome"),
    [
        ("no-such-key", 404, "KeyNotFoundException"),
        ("decrypt_only_key", 400, "InvalidKeyUsageException"),
    ],
)
async def test_failed_request_logs_the_error_it_answered(
    stack: Stack, key_id: str, status: int, outcome: str
) -> None:
    request_id = new_request_id()

    async with open_client(stack) as xks:
        reply = await xks.encrypt(
            key_id, b"x", metadata=request_metadata(request_id=request_id)
        )
    records = await request_log_records(stack, request_id)

    expect_error(reply, status, outcome)
    assert [(r["outcome"], r["status"], r["external_key_id"]) for r in records] == [
        (outcome, status, key_id)
    ]


async def test_health_request_is_logged_with_its_request_id(stack: Stack) -> None:
    request_id = new_request_id()

    async with open_client(stack, "tenant-b") as xks:
        expect_ok(await xks.health(health_body(request_id)))
    records = await request_log_records(stack, request_id)

    assert [(r["keystore"], r["operation"], r["outcome"]) for r in records] == [
        ("tenant-b", "health", "ok")
    ]


async def test_every_sidecar_log_line_is_one_json_object(stack: Stack) -> None:
    # "One event, one line": a traceback or a stray print would break the
    # line-per-event contract that log pipelines rely on.
    async with open_client(stack) as xks:
        expect_ok(await xks.health())
        await xks.encrypt("no-such-key", b"x")
    text = await trio.Path(stack.sidecar_log).read_text()

    lines = [line for line in text.splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json_object(line)]
    assert lines
    assert not not_json, not_json[:5]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _forms(secret: bytes) -> list[bytes]:
    """A value as it could leak: raw, Base64, hex."""
    return [secret, base64.b64encode(secret), secret.hex().encode()]


async def test_no_log_line_holds_plaintext_aad_secrets_or_signatures(
    stack: Stack,
) -> None:
    canary = os.urandom(6).hex().encode()
    plaintext, aad = b"PLAINTEXT-CANARY-" + canary, b"AAD-CANARY-" + canary
    request_id = new_request_id()
    # The harness's session-end check looks for these in every log too.
    stack.remember_secret("plaintext canary", plaintext)
    stack.remember_secret("AAD canary", aad)

    async with open_client(stack) as xks:
        metadata = request_metadata(request_id=request_id)
        encrypted = expect_ok(
            await xks.encrypt("foo", plaintext, aad=aad, metadata=metadata)
        )
        expect_ok(await xks.decrypt("foo", encrypted, aad=aad, metadata=metadata))
        # A failure path too: a tampered tag must not make anyone log inputs.
        bad = {**encrypted, "authenticationTag": "AAAAAAAAAAAAAAAAAAAAAA=="}
        await xks.decrypt("foo", bad, aad=aad, metadata=metadata)
        signatures = [auth.rsplit("Signature=", 1)[1] for auth in xks.authorizations]
    await request_log_records(stack, request_id)  # our lines are written

    logs = b"".join(
        [
            await trio.Path(p).read_bytes()
            for p in (stack.sidecar_log, stack.simulator_log)
        ]
    )
    secrets = [
        s.encode() for info in stack.keystores.values() for _, s in info.credentials
    ]
    forbidden = (
        _forms(plaintext) + _forms(aad) + secrets + [s.encode() for s in signatures]
    )
    leaked = [value for value in forbidden if value in logs]
    assert not leaked, leaked
