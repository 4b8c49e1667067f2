"""Secondary authorization on request metadata (spec, "Authorization").

The harness configures keystore tenant-b with a policy that allows principals
of account 111122223333, denies every other principal, and denies the KMS
operation ReEncrypt. Denials are 403 AccessDeniedException; GetHealthStatus
"MUST be excluded from secondary authorization".
"""

from __future__ import annotations

from tests.e2e.bodies import (
    PRINCIPAL,
    Json,
    decrypt_body,
    encrypt_body,
    health_body,
    metadata_body,
    request_metadata,
)
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.stack import Stack
from tests.e2e.xks_client import open_client

STRANGER = "arn:aws:iam::999999999999:user/mallory"


async def _three_key_apis(stack: Stack, metadata: Json) -> list[tuple[int, str | None]]:
    async with open_client(stack) as dev, open_client(stack, "tenant-b") as tenant:
        encrypted = expect_ok(await dev.encrypt("foo", b"policy"))
        replies = [
            await tenant.post(
                tenant.path("metadata", "foo"),
                {"requestMetadata": {**metadata, "kmsOperation": "DescribeKey"}},
            ),
            await tenant.post(
                tenant.path("encrypt", "foo"),
                encrypt_body(b"policy", metadata=metadata),
            ),
            await tenant.post(
                tenant.path("decrypt", "foo"),
                decrypt_body(encrypted, metadata=metadata),
            ),
        ]
    return [(reply.status, reply.error_name) for reply in replies]


async def test_allowed_principal_may_use_every_key_api(stack: Stack) -> None:
    statuses = await _three_key_apis(stack, request_metadata("Decrypt"))

    assert [status for status, _ in statuses] == [200, 200, 200]


async def test_other_principal_is_denied_every_key_api(stack: Stack) -> None:
    statuses = await _three_key_apis(stack, request_metadata(principal=STRANGER))

    assert statuses == [(403, "AccessDeniedException")] * 3


async def test_denied_kms_operation_is_refused_for_an_allowed_principal(
    stack: Stack,
) -> None:
    async with open_client(stack, "tenant-b") as tenant:
        reencrypt = await tenant.encrypt(
            "foo", b"re", metadata=request_metadata("ReEncrypt", principal=PRINCIPAL)
        )
        encrypt = await tenant.encrypt(
            "foo", b"re", metadata=request_metadata("Encrypt", principal=PRINCIPAL)
        )

    expect_error(reencrypt, 403, "AccessDeniedException")
    expect_ok(encrypt)


async def test_health_is_never_subject_to_the_policy(stack: Stack) -> None:
    # Health metadata names no principal; an extra denied one changes nothing.
    body = health_body()
    body["requestMetadata"].update(awsPrincipalArn=STRANGER, kmsOperation="ReEncrypt")

    async with open_client(stack, "tenant-b") as tenant:
        plain = await tenant.health()
        odd = await tenant.health(body)

    expect_ok(plain)
    expect_ok(odd)


async def test_keystore_without_a_policy_allows_any_principal(stack: Stack) -> None:
    async with open_client(stack, "dev") as dev:
        reply = await dev.metadata("foo", metadata_body(principal=STRANGER))

    expect_ok(reply)
