"""What one phase of a run observed: outcomes, latencies, the client's own lag.

Latency is measured from a request's *scheduled* send time to the end of its
response (see ``scheduler``), and recorded for every request that was
scheduled and not dropped by the client, whatever its outcome: a timeout is
recorded with the time it really took (up to the give-up limit), so the
tail shows how slow the slow answers were.

Two more histograms say whether the figures describe the server or the tool:
``queue_wait`` (scheduled time to the start of sending: waiting for a free
connection, which counts in the latency, as with KMS) and ``dispatch_lag``
(scheduled time to the moment the timetable handed the request on: only the
tool's own slowness shows here).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sidecar.bench.histogram import LatencyHistogram
from sidecar.bench.outcome import DROPPED, Kind, Outcome
from sidecar.bench.payloads import Operation


@dataclass
class Recorder:
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    by_operation: dict[Operation, LatencyHistogram] = field(default_factory=dict)
    queue_wait: LatencyHistogram = field(default_factory=LatencyHistogram)
    dispatch_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    scheduled: int = 0  # requests the timetable reached
    completed: int = 0  # requests with an outcome other than DROPPED
    not_ok: int = 0  # completed requests whose outcome is not OK
    connections_opened: int = 0

    def record(self, operation: Operation, outcome: Outcome, latency: float) -> None:
        """One request finished with ``outcome`` ``latency`` seconds after
        its scheduled send time."""
        self.outcomes[outcome] += 1
        self.completed += 1
        if outcome.kind is not Kind.OK:
            self.not_ok += 1
        self.latency.record(latency)
        histogram = self.by_operation.get(operation)
        if histogram is None:
            self.by_operation[operation] = histogram = LatencyHistogram()
        histogram.record(latency)

    def drop(self) -> None:
        """A request the client never sent: too many were outstanding."""
        self.outcomes[DROPPED] += 1

    def count(self, kind: Kind) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome.kind is kind)

    def details(self, kind: Kind) -> dict[str, int]:
        """Counts of ``kind`` by detail (errorName, reason), largest first."""
        counts = Counter(
            {o.detail: n for o, n in self.outcomes.items() if o.kind is kind}
        )
        return dict(counts.most_common())
