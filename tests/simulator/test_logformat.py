"""The simulator's log lines: the same bytes as logging's stock format."""

from __future__ import annotations

import logging
import sys

from simulator.logformat import LINE_FORMAT, LineBatch, LineFormatter


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord(
        "simulator.server", logging.INFO, __file__, 1, "command=GCEN code=00", (), None
    )
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_lines_match_the_stock_formatter_within_and_across_seconds() -> None:
    cached, stock = LineFormatter(), logging.Formatter(LINE_FORMAT)
    moments = [1_700_000_000.001, 1_700_000_000.999, 1_700_000_001.5, 1_700_003_600.25]

    for created in moments:
        record = _record(created)
        assert cached.format(record) == stock.format(record)


def test_a_new_second_gets_a_new_date() -> None:
    formatter = LineFormatter()

    first = formatter.format(_record(1_700_000_000.5))
    later = formatter.format(_record(1_700_000_061.5))

    assert first.split(",")[0] != later.split(",")[0]


def test_a_record_with_a_traceback_matches_the_stock_formatter() -> None:
    cached, stock = LineFormatter(), logging.Formatter(LINE_FORMAT)
    try:
        int("boom")
    except ValueError:
        record = logging.LogRecord(
            "simulator.server", logging.ERROR, __file__, 1, "failed %s", ("x",), None
        )
        record.exc_info = sys.exc_info()

    assert cached.format(record) == stock.format(record)
    assert "ValueError: invalid literal" in cached.format(record)


def test_a_message_with_arguments_is_rendered_as_stock() -> None:
    record = _record(1_700_000_000.25)
    record.msg, record.args = "code=%s latency_ms=%.1f", ("00", 1.25)

    assert LineFormatter().format(record) == logging.Formatter(LINE_FORMAT).format(
        record
    )


def test_a_batch_of_lines_reads_as_one_record_per_line() -> None:
    batch = LineBatch("simulator.server", logging.INFO, __file__, ["a=1", "b=2 %s"])
    batch.created, batch.msecs = 1_700_000_000.25, 250.0
    stock = logging.Formatter(LINE_FORMAT)

    expected = []
    for line in ("a=1", "b=2 %s"):
        single = _record(1_700_000_000.25)
        single.msg = line
        expected.append(stock.format(single))

    assert LineFormatter().format(batch) == "\n".join(expected)
