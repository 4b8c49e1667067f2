"""The timetable holds when the server is slow, and latency shows the queueing.

The fake proxy answers after ``delay`` seconds, one request at a time per
connection. With one connection and requests scheduled faster than that,
request k cannot finish before (k + 1) * delay after the start, so measured
from its scheduled time k / rate its latency is at least
(k + 1) * delay - k / rate. These are lower bounds the server's sleeps
guarantee, whatever the machine's speed, so the tests cannot flake by being
slow; a closed-loop tool would report about ``delay`` for every request.
"""

from __future__ import annotations

from collections.abc import Iterator

from fixtures.pki import Pki
from sidecar.bench.connection import Target
from sidecar.bench.outcome import EXPIRED, GAVE_UP, LATE, Kind
from sidecar.bench.payloads import Operation, build_pool
from sidecar.bench.recorder import Recorder
from sidecar.bench.runner import caller_of
from sidecar.bench.scheduler import OpenLoopRun, RunPlan
from sidecar.bench.settings import BenchSettings
from sidecar.bench.signer import SigV4Signer, host_header
from sidecar.bench.slot import Slot
from sidecar.bench.tls import client_context
from sidecar.bench.wire import Prepared, prepare
from tests.bench_tool.conftest import RunningProxy
from tests.bench_tool.helpers import settings_for


def slots_for(settings: BenchSettings, count: int) -> list[Slot]:
    host = host_header(settings.endpoint)
    signer = SigV4Signer(settings.access_key_id, settings.secret, settings.region, host)
    context = client_context(
        settings.ca_file, settings.client_cert, settings.client_key
    )
    target = Target(
        settings.connect_host, settings.connect_port, context, settings.server_name
    )
    return [Slot(target, signer) for _ in range(count)]


def encrypts(settings: BenchSettings) -> Iterator[Prepared]:
    host = host_header(settings.endpoint)
    pool = [
        prepare(b, host) for b in build_pool(caller_of(settings), Operation.ENCRYPT, 8)
    ]
    while True:
        yield from pool


async def run_plan(
    settings: BenchSettings, plan: RunPlan, connections: int
) -> Recorder:
    slots = slots_for(settings, connections)
    try:
        run = OpenLoopRun(plan, slots, encrypts(settings), Recorder())
        await run.run()
    finally:
        for slot in slots:
            await slot.aclose()
    return run.recorder


def plan(rate: float, duration: float, **overrides: float) -> RunPlan:
    values = {"timeout": 10.0, "give_up": 10.0, "max_outstanding": 1000}
    values.update(overrides)
    return RunPlan(
        rate,
        duration,
        values["timeout"],
        values["give_up"],
        int(values["max_outstanding"]),
    )


async def test_a_slow_server_does_not_slow_the_timetable(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    fake_proxy.proxy.delay = 0.05  # 20 answers/s on one connection
    settings = settings_for(fake_proxy.port, pki)

    recorder = await run_plan(settings, plan(rate=100, duration=0.2), connections=1)

    # All 20 requests were scheduled and answered, none dropped or failed...
    assert recorder.scheduled == recorder.completed == 20
    assert recorder.outcomes.keys() == {recorder_ok(recorder)}
    # ...and request k waited behind k earlier ones: latency >= 50 + 40k ms.
    assert recorder.latency.max_us >= 810_000
    assert recorder.latency.percentile_us(50) >= 410_000
    assert recorder.queue_wait.max_us >= 760_000  # the wait is in the latency


def recorder_ok(recorder: Recorder) -> object:
    (only,) = recorder.outcomes
    assert only.kind is Kind.OK
    return only


async def test_requests_over_the_outstanding_cap_are_counted_as_dropped(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    fake_proxy.proxy.delay = 0.1
    settings = settings_for(fake_proxy.port, pki)

    recorder = await run_plan(
        settings, plan(rate=100, duration=0.2, max_outstanding=3), connections=1
    )

    dropped = recorder.count(Kind.DROPPED)
    assert dropped > 0
    assert recorder.scheduled == 20 == recorder.completed + dropped
    assert fake_proxy.proxy.requests == recorder.completed


async def test_an_answer_after_the_timeout_is_a_timeout_with_its_real_latency(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    fake_proxy.proxy.delay = 0.1
    settings = settings_for(fake_proxy.port, pki)

    recorder = await run_plan(
        settings, plan(rate=20, duration=0.1, timeout=0.02), connections=2
    )

    assert recorder.outcomes == {LATE: 2}
    assert recorder.latency.min_us >= 100_000


async def test_no_answer_by_the_give_up_time_closes_and_reopens_the_connection(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    fake_proxy.proxy.delay = 1.0
    settings = settings_for(fake_proxy.port, pki)

    recorder = await run_plan(
        settings, plan(rate=20, duration=0.1, timeout=0.01, give_up=0.2), connections=1
    )

    assert recorder.outcomes[GAVE_UP] >= 1
    assert recorder.connections_opened >= 1  # the connection was opened anew
    assert fake_proxy.proxy.connections >= 2


async def test_a_request_that_waited_past_the_give_up_time_is_not_sent(
    fake_proxy: RunningProxy, pki: Pki
) -> None:
    fake_proxy.proxy.delay = 0.2
    settings = settings_for(fake_proxy.port, pki)

    recorder = await run_plan(
        settings, plan(rate=50, duration=0.1, timeout=0.05, give_up=0.3), connections=1
    )

    # Request 0 holds the only connection 200 ms, request 1 another 200 ms;
    # requests 2 to 4 (scheduled 40 to 80 ms in) have then waited >= 320 ms.
    assert recorder.outcomes[EXPIRED] >= 1
    assert fake_proxy.proxy.requests < 5
