"""describe_key's cache: fresh answers without a KINF, one KINF per burst."""

from __future__ import annotations

import pytest
import trio

from sidecar.backends.base import KeyDescription
from sidecar.xks.errors import DependencyTimeoutException, KeyNotFoundException
from simulator.keystore import KeyState, KeyStore
from tests.backends.conftest import BackendFactory, SimNode


async def test_a_fresh_description_is_answered_without_asking_the_node(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, describe_cache_ttl_s=1.0)

    first = await backend.describe_key("foo")
    second = await backend.describe_key("foo")

    assert first == second
    assert sim.count("KINF") == 1


async def test_an_expired_description_is_fetched_again(
    sim: SimNode, make_backend: BackendFactory, store: KeyStore
) -> None:
    backend = make_backend(sim, describe_cache_ttl_s=0.1)
    assert (await backend.describe_key("foo")).enabled
    store.set_state("foo", KeyState.DISABLED)

    stale = await backend.describe_key("foo")
    await trio.sleep(0.15)
    fresh = await backend.describe_key("foo")

    assert stale.enabled
    assert not fresh.enabled
    assert sim.count("KINF") == 2


async def test_a_burst_of_describes_sends_one_key_info(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    sim.faults.latency_ms = 20
    results: list[KeyDescription] = []

    async def describe() -> None:
        results.append(await backend.describe_key("foo"))

    async with trio.open_nursery() as nursery:
        for _ in range(30):
            nursery.start_soon(describe)

    assert len(results) == 30
    assert len(set(results)) == 1
    assert sim.count("KINF") == 1


async def test_a_burst_for_an_unknown_key_shares_one_error_and_caches_none(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim)
    sim.faults.latency_ms = 20
    errors: list[Exception] = []

    async def describe() -> None:
        try:
            await backend.describe_key("no-such-key")
        except KeyNotFoundException as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(describe)

    assert len(errors) == 10
    assert len({id(error) for error in errors}) == 10  # one exception each
    assert sim.count("KINF") == 1
    with pytest.raises(KeyNotFoundException):
        await backend.describe_key("no-such-key")
    assert sim.count("KINF") == 2


async def test_waiters_fetch_again_when_the_fetching_caller_is_cancelled(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, request_timeout_s=2.0)
    await backend.describe_key("encrypt_only_key")  # the connection is open
    sim.faults.latency_ms = 200
    results: list[KeyDescription] = []

    async def impatient() -> None:
        with trio.move_on_after(0.1):
            await backend.describe_key("foo")

    async def patient() -> None:
        results.append(await backend.describe_key("foo"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(impatient)
        await trio.sleep(0.03)  # the impatient caller's KINF is on its way
        nursery.start_soon(patient)

    assert len(results) == 1
    assert results[0].enabled


async def test_describe_is_bounded_by_the_deadline(
    sim: SimNode, make_backend: BackendFactory
) -> None:
    backend = make_backend(sim, request_timeout_s=0.05)
    sim.faults.latency_ms = 300

    with pytest.raises(DependencyTimeoutException):
        await backend.describe_key("foo")
