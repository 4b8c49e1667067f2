"""A served sidecar's request lines: straight to its stream, as logging would."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar import audit
from sidecar.audit import AuditRecord, JsonLineFormatter, json_line


class RecordingStream(io.StringIO):
    """A text stream that remembers what each write carried."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _record(keystore: str = "dev") -> AuditRecord:
    record = AuditRecord("192.0.2.7:4431", "cks.kms.us-east-1.amazonaws.com")
    record.keystore, record.operation = keystore, "encrypt"
    record.metadata = (("kmsRequestId", "r-1"), ("kmsOperation", "Encrypt"))
    return record


def test_each_request_line_is_one_whole_write_with_the_worker_index() -> None:
    stream = RecordingStream()

    with audit.writing_to(stream, worker=3):
        audit.emit(_record("dev"), "ok", 200, 2.0)
        audit.emit(_record("tenant-b"), "ok", 200, 1.0)

    documents = [json.loads(write) for write in stream.writes]
    assert all(
        write.endswith("\n") and write.count("\n") == 1 for write in stream.writes
    )
    assert [(d["keystore"], d["worker"]) for d in documents] == [
        ("dev", 3),
        ("tenant-b", 3),
    ]
    assert (documents[0]["logger"], documents[0]["msg"]) == (
        "sidecar.audit",
        "xks request",
    )


def test_after_the_block_request_lines_go_to_the_audit_logger_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = RecordingStream()
    caplog.set_level(logging.INFO, logger=audit.AUDIT_LOGGER_NAME)
    with audit.writing_to(stream):
        pass

    audit.emit(_record(), "ok", 200, 2.0)

    assert stream.writes == []
    assert [r.getMessage() for r in caplog.records] == ["xks request"]


def test_the_text_format_writes_key_value_lines() -> None:
    stream = RecordingStream()

    with audit.writing_to(stream, json_lines=False):
        audit.emit(_record(), "ok", 200, 2.0)

    (line,) = stream.writes
    assert "INFO sidecar.audit xks request" in line
    assert "kmsRequestId=r-1" in line
    assert line.endswith("latency_ms=2.0\n")


def test_a_stream_that_fails_is_reported_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with audit.writing_to(BrokenStream()):
        audit.emit(_record(), "ok", 200, 2.0)
        audit.emit(_record(), "ok", 200, 2.0)

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "cannot write request lines: [Errno 32] Broken pipe"
    ]


@given(
    values=st.lists(st.text(max_size=40), min_size=12, max_size=12),
    worker=st.none() | st.integers(0, 63),
)
def test_the_request_line_is_the_json_formatters_line_byte_for_byte(
    values: list[str], worker: int | None
) -> None:
    record = AuditRecord(values[0] or None, values[1] or None)
    record.keystore, record.operation = values[2], values[3] or None
    record.external_key_id, record.access_key_id = values[4], values[5] or None
    record.hsm_node, record.reason = values[6] or None, values[7]
    names = ("kmsRequestId", "kmsOperation", "awsPrincipalArn", "kmsKeyArn")
    record.metadata = tuple(zip(names, [v or None for v in values[8:]], strict=True))
    fields = record.fields("ok", 200, 1.23456)
    if worker is not None:
        fields["worker"] = worker
    created = time.time()
    logged = logging.LogRecord(
        audit.AUDIT_LOGGER_NAME, logging.INFO, __file__, 1, "xks request", (), None
    )
    logged.audit, logged.created = dict(fields), created

    assert json_line(fields, created) == JsonLineFormatter().format(logged) + "\n"
