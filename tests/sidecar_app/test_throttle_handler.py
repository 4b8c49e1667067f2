"""Overload protection in the request pipeline, and its configuration."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from sidecar.audit import AUDIT_LOGGER_NAME, JsonLineFormatter
from sidecar.backends.base import GcmResult
from sidecar.config import ConfigError, load_config
from sidecar.dataplane.messages import HttpRequest
from sidecar.handler import Keystore, XksHandler
from sidecar.throttle import Quota, Throttle
from sidecar.xks.policy import Policy
from sidecar.xks.sigv4 import Credential, Secret, SigV4Verifier
from tests.sidecar_app.conftest import (
    ACCESS_KEY_ID,
    REGION,
    SECRET,
    ConfigFile,
    FakeKeyManager,
)
from tests.sidecar_app.test_handler import (
    PATH,
    encrypt_body,
    metadata,
    report_health,
    request,
)

ENCRYPT = f"{PATH}/keys/foo/encrypt"


@dataclass
class HeldBackend(FakeKeyManager):
    """Encrypt waits until released: a request the test keeps in flight."""

    entered: trio.Event = field(default_factory=trio.Event)
    release: trio.Event = field(default_factory=trio.Event)

    async def encrypt(self, key_id: str, plaintext: bytes, hsm_aad: bytes) -> GcmResult:
        self.entered.set()
        await self.release.wait()
        return await super().encrypt(key_id, plaintext, hsm_aad)


def handler_with(backend: FakeKeyManager, throttle: Throttle) -> XksHandler:
    verifier = SigV4Verifier([Credential(ACCESS_KEY_ID, Secret(SECRET))], region=REGION)
    keystore = Keystore("dev", PATH, verifier, Policy(), backend, report_health)
    return XksHandler([keystore], throttle=throttle)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonLineFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == AUDIT_LOGGER_NAME
    ]


def health_body() -> dict[str, Any]:
    return {"requestMetadata": {"kmsRequestId": "h", "kmsOperation": "KmsHealthCheck"}}


async def test_past_max_in_flight_the_answer_is_429_at_once_and_health_still_200(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER_NAME)
    backend = HeldBackend()
    backend.add("foo")
    handler = handler_with(backend, Throttle(max_in_flight=1))
    statuses: list[int] = []

    async def held_request() -> None:
        response = await handler(request(ENCRYPT, encrypt_body(b"a", b"")))
        statuses.append(response.status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(held_request)
        await backend.entered.wait()
        refused = await handler(request(ENCRYPT, encrypt_body(b"b", b"")))
        health = await handler(request(f"{PATH}/health", health_body()))
        backend.release.set()
    after = await handler(request(ENCRYPT, encrypt_body(b"c", b"")))

    assert refused.status == 429
    assert json.loads(refused.body)["errorName"] == "ThrottlingException"
    assert (health.status, statuses, after.status) == (200, [200], 200)
    throttled = [line for line in audit_lines(caplog) if line["status"] == 429]
    assert len(throttled) == 1
    assert throttled[0]["outcome"] == "ThrottlingException"
    assert throttled[0]["kmsRequestId"] == metadata()["kmsRequestId"]
    assert "max_in_flight = 1" in throttled[0]["reason"]


async def test_a_keystore_over_its_quota_is_refused_but_its_health_is_not() -> None:
    backend = FakeKeyManager()
    backend.add("foo")
    handler = handler_with(backend, Throttle(quotas={"dev": Quota(1, 2)}))

    encrypts = [
        (await handler(request(ENCRYPT, encrypt_body(b"x", b"")))).status
        for _ in range(4)
    ]
    healths = [
        (await handler(request(f"{PATH}/health", health_body()))).status
        for _ in range(4)
    ]

    assert encrypts == [200, 200, 429, 429]
    assert healths == [200] * 4


def one_token_and_a_forged_request() -> tuple[XksHandler, bytes, HttpRequest]:
    """A handler whose keystore has one token, a body, and that body unsigned."""
    backend = FakeKeyManager()
    backend.add("foo")
    handler = handler_with(backend, Throttle(quotas={"dev": Quota(1, 1)}))
    raw = json.dumps(encrypt_body(b"x", b"")).encode()
    return handler, raw, request(ENCRYPT, raw, headers=[(b"host", b"xks.example.test")])


async def test_a_request_with_a_bad_signature_spends_no_quota() -> None:
    handler, raw, forged = one_token_and_a_forged_request()

    rejected = await handler(forged)
    accepted = await handler(request(ENCRYPT, raw))

    assert (rejected.status, accepted.status) == (401, 200)


async def test_over_quota_a_request_is_refused_before_its_signature_is_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER_NAME)
    handler, raw, forged = one_token_and_a_forged_request()

    accepted = await handler(request(ENCRYPT, raw))  # the only token
    refused = await handler(forged)  # 429, not 401: SigV4 never ran

    assert (accepted.status, refused.status) == (200, 429)
    line = audit_lines(caplog)[-1]
    assert line["outcome"] == "ThrottlingException"
    assert "access_key_id" not in line  # refused before authentication
    assert "over max_requests_per_second" in line["reason"]


# -- configuration ------------------------------------------------------------------


def test_limits_are_off_unless_configured(config_file: ConfigFile) -> None:
    config = load_config(config_file.write())

    assert config.server.max_in_flight is None
    assert config.keystores[0].quota is None


def test_quota_and_in_flight_cap_are_read(config_file: ConfigFile) -> None:
    text = config_file.text.replace(
        "port = 0\n", "port = 0\nmax_in_flight = 64\n", 1
    ).replace('backend = "hub"\n', 'backend = "hub"\nmax_requests_per_second = 900\n')

    config = load_config(config_file.write(text))

    assert config.server.max_in_flight == 64
    assert config.keystores[0].quota == Quota(900.0, 900.0)  # burst: one second


def test_burst_can_be_set(config_file: ConfigFile) -> None:
    path = config_file.edited(
        'backend = "hub"\n',
        'backend = "hub"\nmax_requests_per_second = 10\nburst = 3\n',
    )

    assert load_config(path).keystores[0].quota == Quota(10.0, 3.0)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("burst = 3", "burst: needs max_requests_per_second"),
        ("max_requests_per_second = 0", "between 1 and"),
        ("max_requests_per_second = 2.5", "must be a whole number"),
    ],
)
def test_bad_quota_settings_are_refused_with_the_key_named(
    config_file: ConfigFile, setting: str, message: str
) -> None:
    path = config_file.edited('backend = "hub"\n', f'backend = "hub"\n{setting}\n')

    with pytest.raises(ConfigError, match=message):
        load_config(path)
