"""The simulator's log line format, with the timestamp made once a second.

The server writes one line per host-protocol command, up to thousands a
second, and the stock ``logging.Formatter`` renders the date with
``time.strftime`` for every record. The date changes once a second, so it is
rendered once a second: formatting a line drops from about 5.4 to 3.0 us on
the 2-core development machine, and the lines are byte for byte what the
stock formatter writes.
"""

from __future__ import annotations

import logging
import time
from typing import Final

LINE_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
_DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # logging's default, before ",msecs"


class LineBatch(logging.LogRecord):
    """One record carrying several lines, each written as a log line of its own.

    The server answers all the commands of one read together and logs their
    lines as one of these: one record and one handler pass (one ``write``)
    instead of one per command. Under tests/bench/simulator_bench.py the log
    line was 16 % of the simulator's py-spy samples one record per command,
    10 % batched (not isolated: measured with the other changes of its
    round, and the batch size varies). ``LineFormatter`` gives every line the
    record's prefix, so the log reads exactly as one record per line would,
    the lines of one batch sharing a timestamp. Any other formatter shows the
    lines joined by newlines, as the record's message.
    """

    def __init__(self, name: str, level: int, pathname: str, lines: list[str]) -> None:
        super().__init__(name, level, pathname, 0, "\n".join(lines), (), None)
        self.lines = lines


class LineFormatter(logging.Formatter):
    """``LINE_FORMAT`` lines whose date part is cached per second."""

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)
        self._second = -1
        self._date = ""

    def format(self, record: logging.LogRecord) -> str:
        """``LINE_FORMAT`` filled in directly, for a record without a traceback.

        The stock path (``usesTime``, a style object, ``%`` over the record's
        whole ``__dict__``) cost about 2.0 us a line, this 1.0; a record with
        an exception or a stack goes the stock way, which appends them.
        """
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        if isinstance(record, LineBatch):
            prefix = f"{record.asctime} {record.levelname} {record.name} "
            return prefix + f"\n{prefix}".join(record.lines)
        return f"{record.asctime} {record.levelname} {record.name} {record.message}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._date = time.strftime(_DATE_FORMAT, self.converter(record.created))
            self._second = second
        return f"{self._date},{int(record.msecs):03d}"
