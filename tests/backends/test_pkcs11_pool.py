"""The PKCS#11 backend under load, past deadlines, and after device failures.

Every test runs against a real SoftHSMv2 token; the failures are real ones
made underneath the backend (all sessions closed, the module finalised), and
the same backend object, never restarted, must carry on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from sidecar.backends.base import GcmResult
from sidecar.backends.pkcs11 import (
    Pin,
    Pkcs11Backend,
    Pkcs11ModuleError,
    open_pkcs11_backend,
)
from sidecar.backends.pkcs11 import gcm as gcm_module
from sidecar.backends.pkcs11.module import acquire_module
from sidecar.xks.envelope import encode_metadata, hsm_aad
from sidecar.xks.errors import DependencyTimeoutException, InternalException
from tests.backends.softhsm import SoftHsm, make_template, make_token

AAD = hsm_aad(b"", encode_metadata(1))
PLAINTEXT = b"pool test"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> SoftHsm:
    return make_token(tmp_path, monkeypatch, copy_of=template)


@pytest.fixture
async def backend(hsm: SoftHsm) -> AsyncIterator[Pkcs11Backend]:
    settings = hsm.settings(pool_size=4, call_timeout_s=5.0)
    async with open_pkcs11_backend(settings) as opened:
        yield opened


async def _round_trip(backend: Pkcs11Backend) -> None:
    sealed = await backend.encrypt("foo", PLAINTEXT, AAD)
    opened = await backend.decrypt(
        "foo", sealed.key_version, sealed.iv, sealed.ciphertext, sealed.tag, AAD
    )
    assert opened == PLAINTEXT


async def _round_trips(backend: Pkcs11Backend, count: int) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(_round_trip, backend)


def _slow_encrypt(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every GCM encryption hold its thread as a slow HSM would."""
    real: Callable[..., Any] = gcm_module.encrypt

    def slow(*args: Any) -> Any:
        time.sleep(seconds)
        return real(*args)

    monkeypatch.setattr(gcm_module, "encrypt", slow)


async def _wait_until_no_session_is_leased(backend: Pkcs11Backend) -> None:
    # Polled: the abandoned worker thread has no way to wake a Trio task.
    for _ in range(500):
        if not backend.pool.leased:
            return
        await trio.sleep(0.01)
    pytest.fail("a worker thread never handed its session back")


# --- concurrency ------------------------------------------------------------


async def test_many_concurrent_calls_share_a_bounded_pool(
    backend: Pkcs11Backend,
) -> None:
    await _round_trips(backend, 200)

    assert backend.pool.leased == 0
    assert 1 <= backend.pool.idle <= 4  # never more sessions than pool_size


async def test_a_slow_call_does_not_block_the_event_loop(
    backend: Pkcs11Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_encrypt(monkeypatch, 0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        await backend.encrypt("foo", PLAINTEXT, AAD)
        nursery.cancel_scope.cancel()

    assert ticks >= 10  # the loop kept running while the thread waited


# --- deadlines -----------------------------------------------------------------


async def test_a_call_past_its_deadline_is_a_dependency_timeout(
    hsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = hsm.settings(call_timeout_s=0.1)
    async with open_pkcs11_backend(settings) as backend:
        _slow_encrypt(monkeypatch, 0.5)
        started = trio.current_time()

        with pytest.raises(DependencyTimeoutException):
            await backend.encrypt("foo", PLAINTEXT, AAD)

        assert trio.current_time() - started < 0.4  # returned at the deadline
        # The abandoned thread finishes and hands its session back.
        await _wait_until_no_session_is_leased(backend)
        monkeypatch.undo()
        result = await backend.encrypt("foo", PLAINTEXT, AAD)
        assert isinstance(result, GcmResult)


async def test_waiting_for_a_free_session_counts_against_the_deadline(
    hsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = hsm.settings(pool_size=1, call_timeout_s=0.1)
    async with open_pkcs11_backend(settings) as backend:
        _slow_encrypt(monkeypatch, 0.5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_expect_timeout, backend)  # holds the one session
            await trio.sleep(0.02)
            started = trio.current_time()
            with pytest.raises(DependencyTimeoutException):
                await backend.describe_key("xks-health-check")
            assert trio.current_time() - started < 0.3
        await _wait_until_no_session_is_leased(backend)


async def _expect_timeout(backend: Pkcs11Backend) -> None:
    with pytest.raises(DependencyTimeoutException):
        await backend.encrypt("foo", PLAINTEXT, AAD)


# --- device failures ---------------------------------------------------------


async def test_recovers_when_every_session_is_closed_underneath(
    backend: Pkcs11Backend,
) -> None:
    await _round_trips(backend, 20)
    generation = backend.pool.module.generation
    slot = _slot_id(backend)

    assert backend.pool.module.cryptoki.close_all_sessions(slot) == 0

    await _round_trips(backend, 20)  # every call succeeds, no restart
    assert backend.pool.module.generation == generation  # new sessions sufficed


# python-pkcs11 leaves an operation marked active when its C_*Init fails (a
# session closed mid-call) and raises again from the finaliser, which Python
# can only report as unraisable: noise, not a failure of the backend.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_recovers_when_sessions_are_closed_in_the_middle_of_a_run(
    backend: Pkcs11Backend,
) -> None:
    slot = _slot_id(backend)
    failures: list[str] = []

    async def round_trip_noting_failures() -> None:
        try:
            await _round_trip(backend)
        except InternalException as exc:
            failures.append(exc.reason or "")

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(round_trip_noting_failures)
        await trio.sleep(0.02)
        cryptoki = backend.pool.module.cryptoki
        await trio.to_thread.run_sync(cryptoki.close_all_sessions, slot)

    # Calls caught in the middle retry on a fresh session; whatever the
    # timing, the very next calls work without a restart.
    assert len(failures) < 100
    await _round_trips(backend, 20)


async def test_recovers_when_the_module_is_finalised_underneath(
    backend: Pkcs11Backend,
) -> None:
    before = await backend.encrypt("foo", PLAINTEXT, AAD)
    generation = backend.pool.module.generation

    backend.pool.module.cryptoki.finalize()

    await _round_trips(backend, 20)
    assert backend.pool.module.generation == generation + 1  # re-initialised
    opened = await backend.decrypt(
        "foo", 1, before.iv, before.ciphertext, before.tag, AAD
    )
    assert opened == PLAINTEXT


async def test_the_health_probe_recovers_a_finalised_module(
    backend: Pkcs11Backend,
) -> None:
    await _round_trip(backend)
    backend.pool.module.cryptoki.finalize()

    [status] = await backend.probe("xks-health-check")

    assert status.state == "ACTIVE", status.detail


def _slot_id(backend: Pkcs11Backend) -> int:
    token = backend.pool._token  # the token the pool's sessions are on
    slot_id: int = token.slot.slot_id
    return slot_id


# --- the PIN -------------------------------------------------------------------


async def test_a_refused_pin_stops_the_start(hsm: SoftHsm) -> None:
    settings = hsm.settings(user_pin=Pin("not-the-pin"))

    with pytest.raises(Pkcs11ModuleError, match="refused the user PIN"):
        async with open_pkcs11_backend(settings):
            pass


async def test_a_refused_pin_is_never_offered_twice(
    hsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = acquire_module(str(hsm.module))
    attempts: list[int] = []
    real_login = module.cryptoki.login

    def counting_login(handle: int, pin: str) -> int:
        attempts.append(handle)
        return real_login(handle, pin)

    monkeypatch.setattr(module.cryptoki, "login", counting_login)
    backend = Pkcs11Backend(hsm.settings(user_pin=Pin("not-the-pin")), module)
    try:
        for _ in range(3):
            with pytest.raises(InternalException):
                await backend.encrypt("foo", PLAINTEXT, AAD)
    finally:
        await backend.aclose()  # releases the module it was given

    assert len(attempts) == 1


async def test_after_close_calls_fail_and_the_module_is_released(
    hsm: SoftHsm,
) -> None:
    async with open_pkcs11_backend(hsm.settings()) as backend:
        module = backend.pool.module
        await _round_trip(backend)

    assert module.users == 0
    with pytest.raises(InternalException):
        await backend.describe_key("foo")
