"""One benchmark, start to end: connect, warm up, run the timetable, report.

Builds everything the hot path needs before the clock starts (TLS context,
signer, request pools, connections, the Decrypts of the warm-up's
ciphertexts), then runs ``scheduler.OpenLoopRun`` with the progress line
beside it, and measures this process's CPU time over the timed phase so the
report can say what one request cost the tool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

import trio

from sidecar.bench.connection import Target
from sidecar.bench.mix import mix_cycle
from sidecar.bench.payloads import Body, Caller, Operation, build_pool
from sidecar.bench.progress import show_progress
from sidecar.bench.recorder import Recorder
from sidecar.bench.report import RunFacts, build_report
from sidecar.bench.scheduler import OpenLoopRun, RunPlan
from sidecar.bench.settings import BenchSettings
from sidecar.bench.signer import SigV4Signer, host_header
from sidecar.bench.slot import Slot
from sidecar.bench.tls import client_context
from sidecar.bench.warmup import WarmupResult, make_ciphertexts, open_connections
from sidecar.bench.wire import Prepared, prepare


class BenchSetupError(Exception):
    """The run could not start: no connection, or no ciphertext to decrypt."""


async def run_bench(settings: BenchSettings, progress: TextIO | None) -> dict[str, Any]:
    """Run the benchmark ``settings`` describe; return the report."""
    host = host_header(settings.endpoint)
    signer = SigV4Signer(settings.access_key_id, settings.secret, settings.region, host)
    target = Target(
        settings.connect_host,
        settings.connect_port,
        client_context(settings.ca_file, settings.client_cert, settings.client_key),
        settings.server_name,
    )
    slots = [Slot(target, signer) for _ in range(settings.connections)]
    try:
        warmup = await _warm_up(settings, slots, host)
        requests = request_stream(settings.mix, _pools(settings, host, warmup.decrypts))
        return await _timed_run(settings, slots, requests, warmup, progress)
    finally:
        for slot in slots:
            await slot.aclose()


def caller_of(settings: BenchSettings) -> Caller:
    return Caller(
        settings.uri_path,
        settings.key_id,
        settings.principal_arn,
        settings.kms_key_arn,
        settings.cdiv,
    )


async def _warm_up(
    settings: BenchSettings, slots: Sequence[Slot], host: str
) -> WarmupResult:
    warmup = WarmupResult()
    await open_connections(slots, warmup)
    if warmup.connection_failures.total() == len(slots):
        reasons = ", ".join(warmup.connection_failures)
        raise BenchSetupError(f"no connection to {settings.endpoint}: {reasons}")
    if settings.warmup:
        await make_ciphertexts(
            slots, caller_of(settings), host, settings.warmup, warmup
        )
    if Operation.DECRYPT in settings.mix and not warmup.decrypts:
        failures = ", ".join(
            f"{o.kind.value} {o.detail}".strip() for o in warmup.failures
        )
        raise BenchSetupError(
            f"the warm-up Encrypts all failed ({failures}): nothing to decrypt"
        )
    return warmup


def _pools(
    settings: BenchSettings, host: str, decrypts: Sequence[Body]
) -> dict[Operation, list[Prepared]]:
    caller = caller_of(settings)
    pools: dict[Operation, list[Prepared]] = {}
    for operation in settings.mix:
        bodies = (
            list(decrypts)
            if operation is Operation.DECRYPT
            else build_pool(caller, operation, settings.pool_size)
        )
        pools[operation] = [prepare(body, host) for body in bodies]
    return pools


def request_stream(
    mix: Mapping[Operation, int], pools: Mapping[Operation, Sequence[Prepared]]
) -> Iterator[Prepared]:
    """Requests in mix order, each operation cycling through its pool."""
    cycle = mix_cycle(mix)
    taken = dict.fromkeys(pools, 0)
    while True:
        for operation in cycle:
            pool = pools[operation]
            yield pool[taken[operation] % len(pool)]
            taken[operation] += 1


async def _timed_run(
    settings: BenchSettings,
    slots: Sequence[Slot],
    requests: Iterator[Prepared],
    warmup: WarmupResult,
    progress: TextIO | None,
) -> dict[str, Any]:
    plan = RunPlan(
        rate=settings.rate,
        duration=settings.duration,
        timeout=settings.timeout_ms / 1000,
        give_up=settings.give_up_ms / 1000,
        max_outstanding=settings.max_outstanding,
    )
    run = OpenLoopRun(plan, slots, requests, Recorder())
    cpu_start, start = time.process_time(), trio.current_time()
    async with trio.open_nursery() as nursery:
        if progress is not None:
            nursery.start_soon(show_progress, run, progress)
        await run.run()
        nursery.cancel_scope.cancel()
    facts = RunFacts(
        timetable_s=plan.total / plan.rate,
        elapsed_s=trio.current_time() - start,
        cpu_s=time.process_time() - cpu_start,
    )
    return build_report(settings, run.recorder, facts, warmup)
