"""SigV4 authentication (spec, "Authentication" and Appendix A).

Every failure is 401 AuthenticationFailedException. Requests are signed by
botocore as KMS would sign them (``host;x-amz-date``), or by curl
(Appendix D); each tampering case changes one thing after signing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.bodies import encrypt_body, health_body, to_json
from tests.e2e.http_wire import Headers, expect_error, expect_ok
from tests.e2e.signing import Signer, signer_for
from tests.e2e.stack import Stack
from tests.e2e.tools import curl_post
from tests.e2e.xks_client import HeaderEdit, open_client


async def test_botocore_signed_request_is_accepted(stack: Stack) -> None:
    async with open_client(stack) as xks:
        reply = await xks.health()

    expect_ok(reply)


async def test_curl_signed_requests_are_accepted(stack: Stack, tmp_path: Path) -> None:
    async with open_client(stack) as xks:
        health = await curl_post(xks, xks.path("health"), health_body(), tmp_path)
        encrypt = await curl_post(
            xks, xks.path("encrypt", "foo"), encrypt_body(b"curl"), tmp_path
        )

    expect_ok(health)
    assert set(expect_ok(encrypt)) >= {"ciphertext", "authenticationTag"}


async def test_curl_signed_request_with_a_wrong_secret_is_refused(
    stack: Stack, tmp_path: Path
) -> None:
    async with open_client(stack) as xks:
        xks.signer = replace(
            xks.signer, secret="WrongSecretWrongSecretWrongSecretWrongSecre"
        )
        reply = await curl_post(xks, xks.path("health"), health_body(), tmp_path)

    expect_error(reply, 401, "AuthenticationFailedException")


async def test_unsigned_request_is_refused(stack: Stack) -> None:
    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("health"), health_body(), unsigned=True)

    expect_error(reply, 401, "AuthenticationFailedException")


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("secret", "WrongSecretWrongSecretWrongSecretWrongSecre"),
        ("access_key_id", "UNKNOWNACCESSKEYID234567AB"),
        ("service", "kms"),
        ("region", "eu-west-1"),
    ],
    ids=["wrong-secret", "unknown-access-key", "wrong-service", "wrong-region"],
)
async def test_signature_with_a_wrong_credential_part_is_refused(
    stack: Stack, change: str, value: str
) -> None:
    signer = replace(signer_for(stack.keystores["dev"]), **{change: value})

    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("health"), health_body(), signer=signer)

    expect_error(reply, 401, "AuthenticationFailedException")


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_timestamp_more_than_five_minutes_off_is_refused(
    stack: Stack, skew: timedelta
) -> None:
    when = datetime.now(UTC).replace(tzinfo=None) + skew

    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("health"), health_body(), when=when)

    expect_error(reply, 401, "AuthenticationFailedException")


async def test_timestamp_four_minutes_old_is_accepted(stack: Stack) -> None:
    # The other side of the skew boundary: Task 4 allows "recent" requests.
    when = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=4)

    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("health"), health_body(), when=when)

    expect_ok(reply)


async def test_body_changed_after_signing_is_refused(stack: Stack) -> None:
    signed = to_json(encrypt_body(b"what was signed"))
    sent = to_json(encrypt_body(b"what was sent!!"))

    async with open_client(stack) as xks:
        reply = await xks.send(
            "POST", xks.path("encrypt", "foo"), sent, sign_body=signed
        )

    expect_error(reply, 401, "AuthenticationFailedException")


async def test_path_changed_after_signing_is_refused(stack: Stack) -> None:
    body = to_json(encrypt_body(b"path"))

    async with open_client(stack) as xks:
        reply = await xks.send(
            "POST",
            xks.path("encrypt", "encrypt_only_key"),
            body,
            sign_path=xks.path("encrypt", "foo"),
        )

    expect_error(reply, 401, "AuthenticationFailedException")


def _replace(name: str, value: str) -> HeaderEdit:
    def edit(headers: Headers) -> Headers:
        return [(n, value if n.lower() == name else v) for n, v in headers]

    return edit


@pytest.mark.parametrize(
    ("header", "altered"),
    [("host", "xks.example.test"), ("x-amz-date", "20200101T000000Z")],
)
async def test_signed_header_altered_after_signing_is_refused(
    stack: Stack, header: str, altered: str
) -> None:
    async with open_client(stack) as xks:
        reply = await xks.post(
            xks.path("health"), health_body(), edit=_replace(header, altered)
        )

    expect_error(reply, 401, "AuthenticationFailedException")


async def test_x_amz_date_moved_by_one_second_is_refused(stack: Stack) -> None:
    # Still inside the skew window, so only the signature can catch it.
    def later(headers: Headers) -> Headers:
        out = []
        for name, value in headers:
            if name.lower() == "x-amz-date":
                stamp = datetime.strptime(value, "%Y%m%dT%H%M%SZ") + timedelta(
                    seconds=1
                )
                value = stamp.strftime("%Y%m%dT%H%M%SZ")
            out.append((name, value))
        return out

    async with open_client(stack) as xks:
        reply = await xks.post(xks.path("health"), health_body(), edit=later)

    expect_error(reply, 401, "AuthenticationFailedException")


async def test_both_credentials_of_a_keystore_work_at_the_same_time(
    stack: Stack,
) -> None:
    # Spec, "SigV4 credentials rotation": at least two sets at once.
    dev = stack.keystores["dev"]
    assert len(dev.credentials) >= 2

    async with open_client(stack) as xks:
        replies = [
            await xks.post(xks.path("health"), health_body(), signer=signer_for(dev, i))
            for i in (0, 1, 0, 1)
        ]

    assert [reply.status for reply in replies] == [200, 200, 200, 200]


@pytest.mark.parametrize(
    ("owner", "target"), [("dev", "tenant-b"), ("tenant-b", "dev")]
)
async def test_credential_of_one_keystore_is_refused_by_another(
    stack: Stack, owner: str, target: str
) -> None:
    foreign: Signer = signer_for(stack.keystores[owner])

    async with open_client(stack, target) as xks:
        own = await xks.post(xks.path("health"), health_body())
        reply = await xks.post(xks.path("health"), health_body(), signer=foreign)

    expect_ok(own)
    expect_error(reply, 401, "AuthenticationFailedException")
