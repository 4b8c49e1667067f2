"""A small XKS-shaped HTTPS server for testing the load tool.

Real TLS (optionally mutual) on port 0, HTTP/1.1 parsed by h11, every
request's SigV4 signature checked with the sidecar's own verifier. It
answers Encrypt, Decrypt, GetKeyMetadata and GetHealthStatus with bodies of
the spec's shape after ``delay`` seconds, one request at a time per
connection, as a real proxy would. No cryptography: the "ciphertext" is the
plaintext reversed and the "tag" a hash, which is enough for Decrypt to give
back the right plaintext and for the tool's checks to hold.

Knobs, changeable while it runs: ``delay``, ``error_names`` (operation ->
errorName to answer with), ``garbage`` (answer 502 with a non-JSON body).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from fixtures.pki import Pki
from sidecar.xks.errors import AuthenticationFailedException
from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier

ACCESS_KEY_ID = "BENCHTESTKEY234567ABCDEFGH"
SECRET = "bench-test-secret-" + "x" * 30
REGION = "us-east-1"
URI_PATH = "/bench/kms/xks/v1"
KEY_ID = "foo"

_STATUS = {
    "ValidationException": 400,
    "InvalidCiphertextException": 400,
    "KeyNotFoundException": 404,
    "ThrottlingException": 429,
    "InternalException": 500,
    "DependencyTimeoutException": 503,
}
_METADATA = b"\x01\x00\x00\x00\x01"


@dataclass
class FakeProxy:
    delay: float = 0.0
    error_names: dict[str, str] = field(default_factory=dict)
    garbage: bool = False
    requests: int = 0
    signature_failures: int = 0
    connections: int = 0
    verifier: SigV4Verifier = field(
        default_factory=lambda: SigV4Verifier(
            [Credential(ACCESS_KEY_ID, Secret(SECRET))], region=REGION
        )
    )


def server_context(pki: Pki, *, mutual: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.sidecar_server_chain), str(pki.sidecar_server_key))
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(pki.aws_ca_bundle))
    return context


async def serve_fake_proxy(
    proxy: FakeProxy,
    context: ssl.SSLContext,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    tls_listeners = [
        trio.SSLListener(listener, context, https_compatible=True)
        for listener in listeners
    ]
    task_status.started(port)

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        proxy.connections += 1
        try:
            await _connection(proxy, stream)
        except (trio.BrokenResourceError, h11.RemoteProtocolError, ssl.SSLError):
            pass  # a client that leaves or fails the handshake is not our test
        finally:
            await trio.aclose_forcefully(stream)

    await trio.serve_listeners(handle, tls_listeners)


async def _connection(
    proxy: FakeProxy, stream: trio.SSLStream[trio.SocketStream]
) -> None:
    http = h11.Connection(h11.SERVER)
    while True:
        request, body = await _read_request(http, stream)
        if request is None:
            return
        proxy.requests += 1
        status, reply = await _answer(proxy, request, body)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(reply))),
        ]
        await stream.send_all(
            http.send(h11.Response(status_code=status, headers=headers))
        )
        await stream.send_all(
            http.send(h11.Data(data=reply)) + http.send(h11.EndOfMessage())
        )
        http.start_next_cycle()


async def _read_request(
    http: h11.Connection, stream: trio.SSLStream[trio.SocketStream]
) -> tuple[h11.Request | None, bytes]:
    request, chunks = None, []
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return request, b"".join(chunks)
        else:  # ConnectionClosed
            return None, b""


async def _answer(
    proxy: FakeProxy, request: h11.Request, body: bytes
) -> tuple[int, bytes]:
    path = request.target.decode()
    try:
        proxy.verifier.verify(
            "POST", path, request.headers.raw_items(), body, time.time()
        )
    except AuthenticationFailedException as exc:
        proxy.signature_failures += 1
        return exc.status, exc.body()
    await trio.sleep(proxy.delay)
    operation = path.rsplit("/", 1)[-1]
    if proxy.garbage:
        return 502, b"<html>bad gateway</html>"
    if operation in proxy.error_names:
        name = proxy.error_names[operation]
        return _STATUS.get(name, 400), json.dumps({"errorName": name}).encode()
    status, doc = _success(operation, json.loads(body))
    return status, json.dumps(doc).encode()


def _success(operation: str, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if operation == "encrypt":
        return 200, _encrypt(doc)
    if operation == "decrypt":
        return _decrypt(doc)
    if operation == "metadata":
        usage = ["ENCRYPT", "DECRYPT"]
        return 200, {"keySpec": "AES_256", "keyUsage": usage, "keyStatus": "ENABLED"}
    return 200, {
        "xksProxyFleetSize": 1,
        "xksProxyVendor": "test",
        "ekmFleetDetails": [],
    }


def _encrypt(doc: dict[str, Any]) -> dict[str, Any]:
    aad = base64.b64decode(doc.get("additionalAuthenticatedData", ""))
    ciphertext = base64.b64decode(doc["plaintext"])[::-1]
    iv = os.urandom(12)
    tag = _tag(aad, iv, ciphertext)
    reply = {
        "ciphertext": _b64(ciphertext),
        "ciphertextMetadata": _b64(_METADATA),
        "initializationVector": _b64(iv),
        "authenticationTag": _b64(tag),
    }
    if "ciphertextDataIntegrityValueAlgorithm" in doc:
        digest = hashlib.sha256(aad + _METADATA + iv + ciphertext + tag).digest()
        reply["ciphertextDataIntegrityValue"] = _b64(digest)
    return reply


def _decrypt(doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    aad = base64.b64decode(doc.get("additionalAuthenticatedData", ""))
    ciphertext = base64.b64decode(doc["ciphertext"])
    iv = base64.b64decode(doc["initializationVector"])
    if base64.b64decode(doc["authenticationTag"]) != _tag(aad, iv, ciphertext):
        return 400, {"errorName": "InvalidCiphertextException"}
    return 200, {"plaintext": _b64(ciphertext[::-1])}


def _tag(aad: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    return hashlib.sha256(aad + _METADATA + iv + ciphertext).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
