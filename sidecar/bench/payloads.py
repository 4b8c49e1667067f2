"""The request bodies a run sends, built before the run starts.

Shapes follow the spec's request payloads (Encrypt, Decrypt, GetKeyMetadata,
GetHealthStatus). Each body carries what the response must show for the call
to count as ``ok`` (an ``Expectation``): a Decrypt must give back the
plaintext its ciphertext was made from, an Encrypt must return a ciphertext
as long as its plaintext and, when asked for one, the right CDIV.

Bodies are built in pools and reused round-robin, so during the run a
request costs a signature and a write, not JSON encoding or randomness. A
body's ``kmsRequestId`` therefore repeats once per pool cycle; the proxy
must treat it as opaque (spec, requestMetadata), so that is harmless.
"""

from __future__ import annotations

import base64
import enum
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

# An AES-256 data key: what GenerateDataKey asks the proxy to wrap.
DATA_KEY_BYTES = 32
# Spec, Encrypt: "The proxy MUST support ... up to 4300 bytes of plaintext".
LARGE_PLAINTEXT_BYTES = 4300
# An encryption context of a few pairs serialises to about this; chosen
# without measuring real traffic.
AAD_BYTES = 100


class Operation(enum.StrEnum):
    """The kinds of request a mix is made of."""

    ENCRYPT = "encrypt"  # GenerateDataKey: a 32-byte data key, with AAD
    DECRYPT = "decrypt"  # of a ciphertext an ENCRYPT made in the warm-up
    ENCRYPT_LARGE = "encrypt_large"  # Encrypt of a 4300-byte payload
    METADATA = "metadata"  # GetKeyMetadata
    HEALTH = "health"  # GetHealthStatus


@dataclass(frozen=True, slots=True)
class Expectation:
    """What an ``ok`` response to one body must contain."""

    plaintext_length: int = 0  # Encrypt: the ciphertext must be this long
    aad: bytes = b""  # Encrypt: input of the CDIV (spec, Appendix C)
    cdiv: bool = False  # Encrypt: a CDIV was requested
    plaintext_b64: str = ""  # Decrypt: the plaintext to get back


@dataclass(frozen=True, slots=True)
class Body:
    """One request body with its path and what its answer must show."""

    operation: Operation
    path: str
    body: bytes
    expect: Expectation


@dataclass(frozen=True, slots=True)
class Caller:
    """The requestMetadata a run claims, and the URI of its key."""

    uri_path: str  # XksProxyUriPath, e.g. /dev/kms/xks/v1
    key_id: str  # external key id
    principal_arn: str
    kms_key_arn: str
    cdiv: bool = True

    def key_path(self, action: str) -> str:
        return f"{self.uri_path}/keys/{self.key_id}/{action}"


def encrypt_body(
    caller: Caller, plaintext: bytes, aad: bytes, operation: Operation
) -> Body:
    kms_operation = "GenerateDataKey" if operation is Operation.ENCRYPT else "Encrypt"
    doc: dict[str, object] = {
        "requestMetadata": _metadata(caller, kms_operation),
        "additionalAuthenticatedData": _b64(aad),
        "plaintext": _b64(plaintext),
        "encryptionAlgorithm": "AES_GCM",
    }
    if caller.cdiv:
        doc["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
    expect = Expectation(len(plaintext), aad, caller.cdiv)
    return Body(operation, caller.key_path("encrypt"), _json(doc), expect)


def decrypt_body(caller: Caller, encrypted: Body, reply: Mapping[str, object]) -> Body:
    """The Decrypt of what ``reply`` returned for the Encrypt ``encrypted``.

    As KMS does, the ciphertext, IV, tag and ciphertextMetadata come from the
    Encrypt response and the AAD from the Encrypt request.
    """
    sent = json.loads(encrypted.body)
    doc: dict[str, object] = {
        "requestMetadata": _metadata(caller, "Decrypt"),
        "additionalAuthenticatedData": sent["additionalAuthenticatedData"],
        "encryptionAlgorithm": "AES_GCM",
    }
    for name in ("ciphertext", "initializationVector", "authenticationTag"):
        doc[name] = reply[name]
    if "ciphertextMetadata" in reply:
        doc["ciphertextMetadata"] = reply["ciphertextMetadata"]
    expect = Expectation(plaintext_b64=sent["plaintext"])
    return Body(Operation.DECRYPT, caller.key_path("decrypt"), _json(doc), expect)


def metadata_body(caller: Caller) -> Body:
    doc = {"requestMetadata": _metadata(caller, "DescribeKey")}
    return Body(
        Operation.METADATA, caller.key_path("metadata"), _json(doc), Expectation()
    )


def health_body(caller: Caller) -> Body:
    # Spec, GetHealthStatus: only kmsRequestId and kmsOperation are sent.
    metadata = {"kmsOperation": "KmsHealthCheck", "kmsRequestId": str(uuid.uuid4())}
    doc = {"requestMetadata": metadata}
    return Body(
        Operation.HEALTH, f"{caller.uri_path}/health", _json(doc), Expectation()
    )


def build_pool(caller: Caller, operation: Operation, size: int) -> list[Body]:
    """``size`` distinct bodies of ``operation`` (not DECRYPT: see warmup)."""
    if operation is Operation.DECRYPT:
        raise ValueError("Decrypt bodies are built from warm-up Encrypts")
    return [_one(caller, operation) for _ in range(size)]


def _one(caller: Caller, operation: Operation) -> Body:
    if operation is Operation.METADATA:
        return metadata_body(caller)
    if operation is Operation.HEALTH:
        return health_body(caller)
    size = DATA_KEY_BYTES if operation is Operation.ENCRYPT else LARGE_PLAINTEXT_BYTES
    return encrypt_body(caller, os.urandom(size), os.urandom(AAD_BYTES), operation)


def _metadata(caller: Caller, kms_operation: str) -> dict[str, str]:
    return {
        "awsPrincipalArn": caller.principal_arn,
        "kmsKeyArn": caller.kms_key_arn,
        "kmsOperation": kms_operation,
        "kmsRequestId": str(uuid.uuid4()),
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
