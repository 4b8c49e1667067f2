"""Requests signed by ``curl --aws-sigv4`` (spec, Appendix D) verify.

curl signs differently from botocore (it adds content-type to the signed
headers, and its own header formatting), so we capture what it really sends
on a local socket and verify that.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest

from sidecar.xks.errors import AuthenticationFailedException
from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier

AKID = "HGIE2BUAFNDMBCMSQVWLGCEXAMPLE"
SECRET = "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456"
PATH = "/path/kms/xks/v1/keys/b42c7fbf-de61-441c-ae24-123456789012/encrypt"
BODY = b'{"requestMetadata":{"kmsOperation":"GenerateDataKey"},"plaintext":"AA=="}'

Captured = tuple[str, str, list[tuple[bytes, bytes]], bytes]


def _read_request(conn: socket.socket) -> Captured:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.split(b"\r\n")
    method, target, _ = request_line.decode().split(" ")
    headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        headers.append((name, value.strip()))
    length = int(next(v for k, v in headers if k.lower() == b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    return method, target, headers, body


def _capture_curl(region: str) -> Captured:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    captured: list[Captured] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                captured.append(_read_request(conn))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        subprocess.run(
            [curl, "-s", "-o", "/dev/null", "--aws-sigv4",
             f"aws:amz:{region}:kms-xks-proxy", "--user", f"{AKID}:{SECRET}",
             "-X", "POST", "-H", "Content-Type:application/json",
             "--data-binary", BODY.decode(), f"http://127.0.0.1:{port}{PATH}"],
            check=True,
            timeout=20,
        )  # fmt: skip
        thread.join(timeout=20)
    return captured[0]


def _verifier() -> SigV4Verifier:
    return SigV4Verifier([Credential(AKID, Secret(SECRET))], region="us-east-1")


def test_curl_signed_request_verifies() -> None:
    method, target, headers, body = _capture_curl("us-east-1")
    assert body == BODY
    verified = _verifier().verify(method, target, headers, body, time.time())
    assert verified.access_key_id == AKID


def test_curl_request_with_a_changed_body_is_rejected() -> None:
    method, target, headers, body = _capture_curl("us-east-1")
    with pytest.raises(AuthenticationFailedException):
        _verifier().verify(method, target, headers, body + b" ", time.time())


def test_curl_request_for_another_region_is_rejected() -> None:
    method, target, headers, body = _capture_curl("eu-west-1")
    with pytest.raises(AuthenticationFailedException) as caught:
        _verifier().verify(method, target, headers, body, time.time())
    assert caught.value.reason is not None
    assert "region" in caught.value.reason
