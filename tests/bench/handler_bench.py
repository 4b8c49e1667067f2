"""Measure the XKS handler alone: routing, SigV4, JSON, policy, service, audit.

    .venv/bin/python -m tests.bench.handler_bench [--requests N] [--profile]

The handler (``sidecar.handler.XksHandler``) runs in one Trio task with an
instant in-memory AES-GCM backend, so what is measured is the sidecar's own
work per request between the data plane and the HSM: the load tool's mix
(Encrypt of 32 bytes with a CDIV, Decrypt of its ciphertext, Encrypt of
4,300 bytes), signed by the load tool's signer, with the audit line written
as in production (JSON lines, to a file standing in for stderr). Printed: CPU
microseconds per request, min and spread of three rounds; ``--profile``
prints cProfile's top functions instead.

Not a pytest test: figures depend on the machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import tempfile
import time
from pathlib import Path

import trio
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sidecar.audit import AUDIT_LOGGER_NAME, JsonLineFormatter
from sidecar.backends.base import GcmResult, KeyDescription
from sidecar.bench.payloads import Body, Caller, Operation, decrypt_body, encrypt_body
from sidecar.bench.signer import SigV4Signer
from sidecar.bench.wire import prepare, render
from sidecar.dataplane.messages import HttpRequest, TlsInfo
from sidecar.handler import Keystore, XksHandler
from sidecar.xks.policy import Policy
from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier

_URI = "/dev/kms/xks/v1"
_HOST = "xks.example.test"
_REGION = "us-east-1"
_ACCESS_KEY_ID = "AKIAHANDLERBENCHKEY1"
_SECRET = Secret("bench-secret-0123456789abcdefghijklmnopqrstuvwxyz")
_TLS = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=cks", "cks")


class _InstantBackend:
    """AES-GCM in process: the backend's cost is left out of the figure."""

    def __init__(self) -> None:
        self._gcm = AESGCM(AESGCM.generate_key(bit_length=256))

    async def describe_key(self, key_id: str) -> KeyDescription:
        return KeyDescription("AES_256", frozenset({"ENCRYPT", "DECRYPT"}), True, 1)

    async def encrypt(self, key_id: str, plaintext: bytes, hsm_aad: bytes) -> GcmResult:
        iv = os.urandom(12)
        sealed = self._gcm.encrypt(iv, plaintext, hsm_aad)
        return GcmResult(1, iv, sealed[:-16], sealed[-16:])

    async def decrypt(
        self,
        key_id: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        hsm_aad: bytes,
    ) -> bytes:
        return self._gcm.decrypt(iv, ciphertext + tag, hsm_aad)


class _NoHealth:
    async def report(self) -> object:  # pragma: no cover - not called
        raise NotImplementedError


def _handler() -> XksHandler:
    verifier = SigV4Verifier([Credential(_ACCESS_KEY_ID, _SECRET)], region=_REGION)
    keystore = Keystore(
        "dev",
        _URI,
        verifier,
        Policy(),
        _InstantBackend(),
        _NoHealth(),  # type: ignore[arg-type]
    )
    return XksHandler([keystore])


def _request(raw: bytes) -> HttpRequest:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode().split(" ")
    headers = tuple(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(b":") for line in lines[1:])
    )
    return HttpRequest(method, target, headers, body, "1.1", ("127.0.0.1", 5), _TLS)


async def _requests(handler: XksHandler, count: int) -> list[HttpRequest]:
    """The mix, signed now; Decrypts carry real ciphertexts of Encrypts."""
    signer = SigV4Signer(_ACCESS_KEY_ID, _SECRET, _REGION, _HOST)
    caller = Caller(_URI, "foo", "arn:aws:iam::111122223333:role/bench", "arn:k")
    aad = os.urandom(100)
    small = encrypt_body(caller, os.urandom(32), aad, Operation.ENCRYPT)
    large = encrypt_body(caller, os.urandom(4300), aad, Operation.ENCRYPT_LARGE)
    answer = await handler(_request(render(prepare(small, _HOST), signer)))
    decrypt = decrypt_body(caller, small, json.loads(answer.body))
    mix: list[Body] = [small] * 12 + [decrypt] * 7 + [large]
    return [
        _request(render(prepare(mix[i % len(mix)], _HOST), signer))
        for i in range(count)
    ]


async def _round(handler: XksHandler, requests: list[HttpRequest]) -> float:
    started = time.process_time()
    for request in requests:
        response = await handler(request)
        if response.status != 200:
            raise SystemExit(f"unexpected {response.status}: {response.body!r}")
    return (time.process_time() - started) / len(requests) * 1e6


async def _main(count: int, profile: bool) -> None:
    handler = _handler()
    requests = await _requests(handler, count)
    await _round(handler, requests[:200])  # warm caches
    if profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        await _round(handler, requests)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        return
    figures = [await _round(handler, requests) for _ in range(3)]
    print(
        f"handler: {min(figures):.1f} us/request CPU"
        f" (rounds {', '.join(f'{f:.1f}' for f in figures)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stream = Path(folder, "audit.log").open("w")  # noqa: SIM115 - closed below
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLineFormatter())
        logging.getLogger().handlers[:] = [handler]
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger(AUDIT_LOGGER_NAME).setLevel(logging.INFO)
        try:
            trio.run(_main, args.requests, args.profile)
        finally:
            stream.close()


if __name__ == "__main__":
    main()
