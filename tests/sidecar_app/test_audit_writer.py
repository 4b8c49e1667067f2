"""The request-line writer: batches, whole lines, and nothing held long."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
import trio

from sidecar import audit
from sidecar.audit import AuditRecord, JsonLineFormatter, json_line
from sidecar.audit_writer import MAX_DELAY_S, PIPE_BUF, AuditWriter, batching


class RecordingStream(io.StringIO):
    """A text stream that remembers what each write (then flush) carried."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def line(number: int, size: int = 100) -> str:
    text = json.dumps({"n": number, "pad": "x" * size})
    return text + "\n"


def test_outside_a_batching_block_every_line_is_written_at_once() -> None:
    stream = RecordingStream()
    writer = AuditWriter(stream)

    writer.write(line(1))
    writer.write(line(2))

    assert stream.writes == [line(1), line(2)]


async def test_lines_of_one_busy_stretch_leave_in_one_write_when_the_loop_waits() -> (
    None
):
    stream = RecordingStream()
    writer = AuditWriter(stream)

    with batching(writer):
        for number in range(5):
            writer.write(line(number))
        assert stream.writes == []  # no wait yet: still batched
        await trio.sleep(0.001)  # the loop waits: the batch goes out

        assert stream.writes == ["".join(line(n) for n in range(5))]


async def test_a_batch_never_passes_pipe_buf_and_lines_stay_whole_and_in_order() -> (
    None
):
    stream = RecordingStream()
    writer = AuditWriter(stream)
    lines = [line(number, size=700) for number in range(40)]

    with batching(writer):
        for text in lines:
            writer.write(text)
        await trio.sleep(0.001)

    assert len(stream.writes) > 1
    assert all(len(write) <= PIPE_BUF for write in stream.writes)
    assert all(write.endswith("\n") for write in stream.writes)
    assert "".join(stream.writes) == "".join(lines)


async def test_a_loop_that_never_waits_still_writes_a_line_within_the_delay() -> None:
    stream = RecordingStream()
    writer = AuditWriter(stream)

    with batching(writer):
        writer.write(line(1))
        started = time.monotonic()
        # Busy: the loop only polls (timeout 0) and never goes idle.
        while not stream.writes and time.monotonic() - started < 10 * MAX_DELAY_S:
            await trio.lowlevel.checkpoint()
        waited = time.monotonic() - started

    assert stream.writes[0] == line(1)
    assert MAX_DELAY_S * 0.9 <= waited < 5 * MAX_DELAY_S


async def test_leaving_the_block_writes_what_is_queued() -> None:
    stream = RecordingStream()
    writer = AuditWriter(stream)

    with batching(writer):
        writer.write(line(1))

    assert stream.writes == [line(1)]
    writer.write(line(2))  # and after it, lines go out at once again
    assert stream.writes == [line(1), line(2)]


def test_a_stream_that_fails_is_reported_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = AuditWriter(BrokenStream())

    writer.write(line(1))
    writer.write(line(2))

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "cannot write audit lines: [Errno 32] Broken pipe"
    ]


def test_the_request_line_is_the_json_formatters_line_byte_for_byte() -> None:
    record = AuditRecord("192.0.2.7:4431", "cks.kms.us-east-1.amazonaws.com")
    record.keystore, record.operation = "dev", "encrypt"
    record.metadata = (("kmsRequestId", "r-1"), ("kmsOperation", "Encrypt"))
    fields = record.fields("ok", 200, 1.5)
    fields["worker"] = 1
    logged = logging.LogRecord(
        audit.AUDIT_LOGGER_NAME, logging.INFO, __file__, 1, "xks request", (), None
    )
    logged.audit = dict(fields)

    assert json_line(dict(fields), logged.created) == (
        JsonLineFormatter().format(logged) + "\n"
    )


async def test_a_served_request_line_goes_to_the_writer_with_the_worker_index() -> None:
    stream = RecordingStream()
    writer = AuditWriter(stream)
    record = AuditRecord(None, None)
    record.keystore = "dev"

    with audit.writing_to(writer, worker=3), batching(writer):
        audit.emit(record, "ok", 200, 2.0)
        await trio.sleep(0.001)

    (document,) = [json.loads(text) for text in stream.writes]
    assert (document["keystore"], document["worker"]) == ("dev", 3)
    assert (document["logger"], document["msg"]) == ("sidecar.audit", "xks request")
