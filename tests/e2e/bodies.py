"""XKS request bodies as KMS sends them (spec, "API operations").

Plain dicts, so a test can drop, change or add any field before sending;
``to_json`` makes the compact bytes that go on the wire.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

# An account the tenant-b policy allows (arn:aws:iam::111122223333:*).
PRINCIPAL = "arn:aws:iam::111122223333:user/conformance"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/0b8e0c5e-0000-4000-8000-c0ffee000001"

Json = dict[str, Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def new_request_id() -> str:
    return str(uuid.uuid4())


def request_metadata(
    operation: str = "Encrypt",
    *,
    request_id: str | None = None,
    principal: str | None = PRINCIPAL,
    key_arn: str | None = KEY_ARN,
) -> Json:
    """A requestMetadata object; fields passed as None are left out."""
    fields = {
        "awsPrincipalArn": principal,
        "kmsKeyArn": key_arn,
        "kmsOperation": operation,
        "kmsRequestId": request_id or new_request_id(),
    }
    return {name: value for name, value in fields.items() if value is not None}


def health_body(request_id: str | None = None) -> Json:
    # GetHealthStatus carries only kmsRequestId and kmsOperation.
    metadata = request_metadata(
        "KmsHealthCheck", request_id=request_id, principal=None, key_arn=None
    )
    return {"requestMetadata": metadata}


def metadata_body(operation: str = "CreateKey", **fields: Any) -> Json:
    # kmsKeyArn is optional here (spec change log 0.0.12); CreateKey omits it.
    return {"requestMetadata": request_metadata(operation, key_arn=None, **fields)}


def encrypt_body(
    plaintext: bytes,
    *,
    aad: bytes | None = None,
    cdiv: bool = False,
    metadata: Json | None = None,
) -> Json:
    body: Json = {
        "requestMetadata": metadata or request_metadata("Encrypt"),
        "plaintext": b64(plaintext),
        "encryptionAlgorithm": "AES_GCM",
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = b64(aad)
    if cdiv:
        body["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
    return body


def decrypt_body(
    encrypted: Mapping[str, Any],
    *,
    aad: bytes | None = None,
    metadata: Json | None = None,
) -> Json:
    """A Decrypt body from an Encrypt response (fields copied as they came)."""
    body: Json = {
        "requestMetadata": metadata or request_metadata("Decrypt"),
        "encryptionAlgorithm": "AES_GCM",
    }
    for name in ("ciphertext", "ciphertextMetadata", "initializationVector"):
        if name in encrypted:
            body[name] = encrypted[name]
    body["authenticationTag"] = encrypted["authenticationTag"]
    if aad is not None:
        body["additionalAuthenticatedData"] = b64(aad)
    return body


def to_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
