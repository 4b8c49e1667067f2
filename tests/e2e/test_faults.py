"""Deadlines and health under injected HSM faults (needs the admin console).

Spec: KMS gives every call 250 ms ("KMS Considerations"); a proxy that
cannot reach its dependency in time answers 503 DependencyTimeoutException
(Error codes); GetHealthStatus may answer from a cached deep check no older
than a minute, and reports a node UNAVAILABLE when it "is unable to serve
traffic". The e2e stack runs the deep check every second with a 150 ms
backend deadline.

Simulator only: faults are injected through the simulator's console, and no
other backend has such a knob (SoftHSMv2 answers in microseconds, always).
So ``stack`` here is the simulator's stack, not the conftest's fixture
parametrized by backend (docs/conformance.md, "Simulator-only tests").
"""

from __future__ import annotations

import pytest
import trio

from tests.e2e.console import needs_console
from tests.e2e.http_wire import expect_error, expect_ok
from tests.e2e.polling import eventually
from tests.e2e.stack import Stack
from tests.e2e.xks_client import XksClient, open_client

KMS_TIMEOUT = 0.25  # seconds
HEALTH_INTERVAL = 1.0  # the e2e stack's deep-check interval


@pytest.fixture(scope="module")
def stack(simulator_stack: Stack) -> Stack:
    # Module scope: it must outlive the autouse fixture that clears faults
    # after each test.
    return simulator_stack


async def test_encrypt_and_decrypt_answer_503_inside_the_kms_timeout_under_latency(
    stack: Stack,
) -> None:
    console = needs_console(stack)
    async with open_client(stack) as xks:
        encrypted = expect_ok(await xks.encrypt("foo", b"slow"))  # warm connection
        connection = xks.connection
        await console.latency(400)
        try:
            started = trio.current_time()
            encrypt = await xks.encrypt("foo", b"slow")
            encrypt_time = trio.current_time() - started
            started = trio.current_time()
            decrypt = await xks.decrypt("foo", encrypted)
            decrypt_time = trio.current_time() - started
        finally:
            await console.clear_faults()
        recovered = await eventually(lambda: _encrypts(xks), within=3)
        same_connection = xks.connection is connection

    expect_error(encrypt, 503, "DependencyTimeoutException")
    expect_error(decrypt, 503, "DependencyTimeoutException")
    assert encrypt_time < KMS_TIMEOUT
    assert decrypt_time < KMS_TIMEOUT
    assert recovered, "encrypt still failing 3 s after faults clear"
    assert same_connection


async def test_metadata_of_a_key_not_yet_described_answers_503_under_latency(
    stack: Stack,
) -> None:
    # A key the proxy has never described cannot come from any cache, so
    # GetKeyMetadata must reach the slow HSM and time out.
    console = needs_console(stack)
    key_id = await console.create_key()
    try:
        async with open_client(stack) as xks:
            expect_ok(await xks.health())  # warm connection
            await console.latency(400)
            started = trio.current_time()
            reply = await xks.metadata(key_id)
            elapsed = trio.current_time() - started
    finally:
        await console.clear_faults()
        await console.destroy_key(key_id)

    expect_error(reply, 503, "DependencyTimeoutException")
    assert elapsed < KMS_TIMEOUT


async def _encrypts(xks: XksClient) -> bool:
    return (await xks.encrypt("foo", b"again")).status == 200


async def test_health_stays_fast_while_the_hsm_is_slow(stack: Stack) -> None:
    console = needs_console(stack)
    async with open_client(stack) as xks:
        expect_ok(await xks.health())
        await console.latency(400)
        timings = []
        try:
            # Across more than one deep-check interval, so some answers come
            # after probes started timing out.
            for _ in range(6):
                started = trio.current_time()
                expect_ok(await xks.health())
                timings.append(trio.current_time() - started)
                await trio.sleep(HEALTH_INTERVAL / 4)
            # Proof that the HSM really was slow meanwhile.
            encrypt = await xks.encrypt("foo", b"slow")
        finally:
            await console.clear_faults()

    assert max(timings) < KMS_TIMEOUT, timings
    expect_error(encrypt, 503, "DependencyTimeoutException")


async def _node_states(xks: XksClient) -> set[str]:
    health = expect_ok(await xks.health())
    return {node["healthStatus"] for node in health["ekmFleetDetails"]}


async def test_health_turns_unavailable_in_an_outage_and_active_after(
    stack: Stack,
) -> None:
    console = needs_console(stack)
    async with open_client(stack) as xks:
        # A fault of an earlier test may still show in the cached result.
        assert await eventually(
            lambda: _all_are(xks, "ACTIVE"), within=8 * HEALTH_INTERVAL
        ), "nodes not ACTIVE before the outage"
        await console.outage(True)
        try:
            down = await eventually(
                lambda: _all_are(xks, "UNAVAILABLE"), within=5 * HEALTH_INTERVAL
            )
        finally:
            await console.clear_faults()
        up = await eventually(
            lambda: _all_are(xks, "ACTIVE"), within=8 * HEALTH_INTERVAL
        )

    assert down, "nodes not UNAVAILABLE within five deep-check intervals of the outage"
    assert up, "nodes not ACTIVE within eight deep-check intervals of faults clear"


async def _all_are(xks: XksClient, state: str) -> bool:
    return await _node_states(xks) == {state}
