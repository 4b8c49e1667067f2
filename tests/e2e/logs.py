"""Reading the stack's log files: one JSON object per line.

The sidecar writes one structured line per request; tests find the lines of
their own request by its kmsRequestId.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio

from tests.e2e.bodies import Json
from tests.e2e.polling import eventually
from tests.e2e.stack import Stack


async def log_records(path: Path) -> list[Json]:
    """Every JSON object line of a log file (other lines are skipped)."""
    records = []
    for line in (await trio.Path(path).read_text(errors="replace")).splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            records.append(doc)
    return records


async def request_log_records(stack: Stack, kms_request_id: str) -> list[Json]:
    """The sidecar's log lines naming ``kms_request_id``.

    Waits up to 3 s for the first, then briefly more, so that a duplicate
    line written just after it is counted too.
    """
    found = await eventually(lambda: _records_naming(stack, kms_request_id), 3, 0.05)
    assert found, f"no log line with kmsRequestId {kms_request_id!r} within 3 s"
    await trio.sleep(0.2)
    return await _records_naming(stack, kms_request_id)


async def _records_naming(stack: Stack, kms_request_id: str) -> list[Json]:
    records = await log_records(stack.sidecar_log)
    return [r for r in records if r.get("kmsRequestId") == kms_request_id]
