"""The request log line and the JSON-lines log format."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from sidecar import audit
from sidecar.audit import AuditRecord, JsonLineFormatter, TextLineFormatter


def log_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "sidecar.x", logging.INFO, __file__, 1, message, (), None
    )
    record.__dict__.update(extra)
    return record


def test_audit_fields_leave_out_what_is_unknown() -> None:
    record = AuditRecord(peer=None, tls_client_cn=None)
    record.keystore = "dev"
    record.metadata = (("kmsRequestId", "r-1"), ("awsPrincipalArn", None))

    fields = record.fields("ok", 200, 1.23456)

    assert fields == {
        "kmsRequestId": "r-1",
        "keystore": "dev",
        "outcome": "ok",
        "status": 200,
        "latency_ms": 1.235,
    }


def test_backend_can_name_the_hsm_node_of_the_current_request() -> None:
    record = AuditRecord("192.0.2.1:1", None)
    token = audit.begin(record)
    try:
        audit.note_hsm_node("hub-2")
    finally:
        audit.end(token)
    audit.note_hsm_node("after-the-request")  # no current request: ignored

    assert record.hsm_node == "hub-2"


def test_json_line_merges_audit_fields_at_the_top_level() -> None:
    line = JsonLineFormatter().format(
        log_record("xks request", audit={"kmsRequestId": "r-1", "status": 200})
    )

    document = json.loads(line)
    assert "\n" not in line
    assert document["kmsRequestId"] == "r-1"
    assert document["status"] == 200
    assert (document["level"], document["logger"]) == ("INFO", "sidecar.x")
    assert document["ts"].endswith("Z")


def test_a_traceback_stays_on_its_event_line() -> None:
    try:
        int("boom")
    except ValueError:
        record = log_record("failed", exc_info=sys.exc_info())

    line = JsonLineFormatter().format(record)

    assert "\n" not in line
    assert "ValueError: invalid literal" in json.loads(line)["exc"]


def test_text_format_shows_the_audit_fields_as_pairs() -> None:
    line = TextLineFormatter().format(
        log_record("xks request", audit={"outcome": "ok", "status": 200})
    )

    assert line.endswith("xks request outcome=ok status=200")


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _emitted_lines(count: int, pause: float = 0.0) -> list[logging.LogRecord]:
    keep = _Keep()
    logger = logging.getLogger(audit.AUDIT_LOGGER_NAME)
    logger.addHandler(keep)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        for _ in range(count):
            audit.emit(AuditRecord(None, None), "ok", 200, 1.0)
            time.sleep(pause)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old_level)
    return keep.records


def test_each_request_line_carries_its_own_time_and_fields() -> None:
    before = time.time()
    first, second = _emitted_lines(2, pause=0.02)

    assert before <= first.created < second.created <= time.time()
    assert second.created - first.created >= 0.02
    assert second.relativeCreated - first.relativeCreated >= 20
    assert first.msecs == int((first.created % 1) * 1000)
    assert first.audit is not second.audit  # type: ignore[attr-defined]
    assert first.getMessage() == "xks request"
    assert (first.name, first.levelname) == (audit.AUDIT_LOGGER_NAME, "INFO")
    assert first.thread == threading.get_ident()


def test_request_line_from_another_thread_names_that_thread() -> None:
    lines: list[logging.LogRecord] = []
    worker = threading.Thread(target=lambda: lines.extend(_emitted_lines(1)))
    worker.start()
    worker.join()

    assert lines[0].thread == worker.ident
    assert lines[0].thread != threading.get_ident()
