"""Overload: a keystore past its quota gets ThrottlingException at once.

Spec, "Error codes": 429 ThrottlingException, "the request rate is too high
... the caller exceeded its request quota"; "API operations": a proxy MAY
keep independent request quotas per path prefix. KMS gives up on a call
after 250 ms, so a proxy that cannot serve a request should refuse it at
once rather than let it queue.

The test runs a second sidecar of its own beside the session's, on the same
HSM: the stack's configuration with ``[server] workers = 2`` and a small
quota on the ``dev`` keystore, so it also covers the supervisor and the
quota shared between workers end to end.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from tests.e2e.config_files import DEV_SECRET_ENV
from tests.e2e.http_wire import Reply, expect_ok
from tests.e2e.leaks import find_leaks
from tests.e2e.logs import log_records
from tests.e2e.processes import Process
from tests.e2e.stack import Stack
from tests.e2e.xks_client import open_client

# 1 request a second with a burst of 2, across two workers: each admits one
# request at once and one more every two seconds. A burst of 30 requests
# must see both outcomes, however slow the machine.
QUOTA = "max_requests_per_second = 1\nburst = 2\n"
CONNECTIONS = 10
REQUESTS_PER_CONNECTION = 3


def throttled_config(stack: Stack) -> str:
    text = (stack.workdir / "sidecar.toml").read_text()
    for anchor in ("ping_port = 0\n", 'name = "dev"\n'):
        assert text.count(anchor) == 1, f"the stack's config changed: {anchor!r}"
    return text.replace("ping_port = 0\n", "ping_port = 0\nworkers = 2\n").replace(
        'name = "dev"\n', f'name = "dev"\n{QUOTA}'
    )


@contextmanager
def throttled_sidecar(stack: Stack, folder: Path) -> Iterator[Stack]:
    """The stack, as seen through a sidecar with the quota (stopped after)."""
    config = folder / "sidecar.toml"
    config.write_text(throttled_config(stack))
    process = Process(
        name="throttled sidecar",
        argv=[sys.executable, "-m", "sidecar", "serve", "--config", str(config)],
        log=folder / "sidecar.log",
        ready_file=folder / "ready.json",
        env={DEV_SECRET_ENV: stack.keystores["dev"].credentials[1][1]},
    )
    try:
        ports = process.start()
        yield dataclasses.replace(
            stack, port=ports["xks"], ping_port=ports["ping"], sidecar_log=process.log
        )
    finally:
        process.stop()


async def burst(stack: Stack) -> list[Reply]:
    replies: list[Reply] = []

    async def one_connection() -> None:
        async with open_client(stack) as xks:
            for _ in range(REQUESTS_PER_CONNECTION):
                replies.append(await xks.encrypt("foo", b"overload"))

    async with trio.open_nursery() as nursery:
        for _ in range(CONNECTIONS):
            nursery.start_soon(one_connection)
    return replies


async def test_a_burst_past_the_quota_gets_some_429_at_once_and_the_rest_200(
    stack: Stack, tmp_path: Path
) -> None:
    with throttled_sidecar(stack, tmp_path) as throttled:
        replies = await burst(throttled)
        async with open_client(throttled) as xks:
            health = [await xks.health() for _ in range(3)]
        async with open_client(throttled, "tenant-b") as xks:
            unlimited = await xks.metadata("foo")
    records = await log_records(throttled.sidecar_log)

    outcomes = sorted({(r.status, r.error_name) for r in replies}, key=str)
    assert outcomes == [(200, None), (429, "ThrottlingException")], outcomes
    assert len(replies) == CONNECTIONS * REQUESTS_PER_CONNECTION  # none timed out
    for reply in health:
        expect_ok(reply)  # GetHealthStatus is never held to the quota
    expect_ok(unlimited)  # another keystore's quota is its own
    refused = [r for r in records if r.get("outcome") == "ThrottlingException"]
    assert len(refused) == sum(r.status == 429 for r in replies)
    assert all("over max_requests_per_second = 1" in r["reason"] for r in refused)
    assert all(r.get("kmsRequestId") and r.get("worker") in (0, 1) for r in refused)
    assert not find_leaks(throttled)
