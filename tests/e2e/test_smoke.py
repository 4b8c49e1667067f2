"""Smoke tests of the harness itself: the stack answers as KMS would expect.

Deliberately independent of ``xks_client.py``: one request per connection,
signed by botocore's ``SigV4Auth`` as KMS-compatible tools sign, parsed by
h11, so a fault in the harness shows here apart from the conformance suite.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import uuid
from typing import Any

import h11
import trio
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.leaks import find_leaks
from tests.e2e.stack import Stack

PRINCIPAL = "arn:aws:iam::111122223333:user/smoke"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/smoke"


async def signed_post(
    stack: Stack, path: str, document: dict[str, Any], *, keystore: str = "dev"
) -> tuple[int, dict[str, Any]]:
    """POST ``document`` over mTLS, signed with the keystore's first credential."""
    info = stack.keystores[keystore]
    access_key_id, secret = info.credentials[0]
    host = f"{stack.server_name}:{stack.port}"
    body = json.dumps(document).encode()
    request = AWSRequest("POST", f"https://{host}{path}", data=body)
    SigV4Auth(
        Credentials(access_key_id, secret), "kms-xks-proxy", info.region
    ).add_auth(request)
    headers = [("Host", host), ("Content-Type", "application/json")]
    headers += [(k, v) for k, v in request.headers.items() if k.lower() != "host"]
    headers += [("Content-Length", str(len(body))), ("Connection", "close")]
    return await _exchange(
        stack, h11.Request(method="POST", target=path, headers=headers), body
    )


async def _exchange(
    stack: Stack, request: h11.Request, body: bytes
) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(stack.pki.public_root_cert))
    context.load_cert_chain(stack.pki.kms_client_chain, stack.pki.kms_client_key)
    tcp = await trio.open_tcp_stream(stack.host, stack.port)
    stream = trio.SSLStream(tcp, context, server_hostname=stack.server_name)
    client = h11.Connection(h11.CLIENT)
    async with stream:
        data = client.send(request) + client.send(h11.Data(data=body))
        await stream.send_all(data + client.send(h11.EndOfMessage()))
        with trio.fail_after(10):
            return await _read_reply(stream, client)


async def _read_reply(
    stream: trio.SSLStream[trio.SocketStream], client: h11.Connection
) -> tuple[int, dict[str, Any]]:
    status, chunks = 0, []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return status, json.loads(b"".join(chunks))


def metadata(operation: str) -> dict[str, str]:
    return {
        "kmsRequestId": str(uuid.uuid4()),
        "kmsOperation": operation,
        "awsPrincipalArn": PRINCIPAL,
        "kmsKeyArn": KEY_ARN,
    }


async def test_health_reports_the_simulator_node_active(stack: Stack) -> None:
    document = {
        "requestMetadata": {"kmsRequestId": "smoke", "kmsOperation": "KmsHealthCheck"}
    }

    status, health = await signed_post(stack, "/dev/kms/xks/v1/health", document)

    assert status == 200, health
    assert health["xksProxyFleetSize"] == 1
    assert [node["healthStatus"] for node in health["ekmFleetDetails"]] == ["ACTIVE"]


async def test_encrypt_then_decrypt_returns_the_plaintext(stack: Stack) -> None:
    plaintext, aad = os.urandom(32), os.urandom(24)
    stack.remember_secret("smoke plaintext", base64.b64encode(plaintext))
    stack.remember_secret("smoke AAD", base64.b64encode(aad))
    encrypt = {
        "requestMetadata": metadata("Encrypt"),
        "plaintext": base64.b64encode(plaintext).decode(),
        "additionalAuthenticatedData": base64.b64encode(aad).decode(),
        "encryptionAlgorithm": "AES_GCM",
    }

    status, sealed = await signed_post(
        stack, "/dev/kms/xks/v1/keys/foo/encrypt", encrypt
    )
    assert status == 200, sealed
    decrypt = {
        "requestMetadata": metadata("Decrypt"),
        "additionalAuthenticatedData": encrypt["additionalAuthenticatedData"],
        "encryptionAlgorithm": "AES_GCM",
        **{
            name: sealed[name]
            for name in (
                "ciphertext",
                "ciphertextMetadata",
                "initializationVector",
                "authenticationTag",
            )
        },
    }
    status, opened = await signed_post(
        stack, "/dev/kms/xks/v1/keys/foo/decrypt", decrypt
    )

    assert status == 200, opened
    assert base64.b64decode(opened["plaintext"]) == plaintext


async def test_logs_hold_no_secret_so_far(stack: Stack) -> None:
    """The session-end check, run now, after this session's requests."""
    document = {"requestMetadata": metadata("Encrypt"), "plaintext": "c2VjcmV0"}
    await signed_post(stack, "/dev/kms/xks/v1/keys/foo/encrypt", document)

    assert find_leaks(stack) == []


async def test_console_reaches_the_simulator(stack: Stack) -> None:
    status, out, err = await stack.console("keys list")

    assert status == 0, err
    assert "xks-health-check" in out
