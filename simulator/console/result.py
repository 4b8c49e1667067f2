"""What a console command gives back, and the errors it stops with.

The command layer is sans-IO: it returns text and an exit status and leaves
writing, prompting and logging to the SSH session around it. Exit statuses::

    0  the command did what it says
    1  the simulator refused it (no such key, key exists, cancelled, ...)
    2  the command line itself is wrong (unknown command, bad argument)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Confirmation:
    """A destructive step that waits for the operator to type ``expected``."""

    prompt: str
    expected: str
    action: Callable[[], CommandResult]


@dataclass(frozen=True)
class CommandResult:
    """Text for the operator and an exit status.

    On failure ``output`` is the one-line error message. ``confirmation`` is set
    when the command has not acted yet; ``end_session`` when it asks to log out.
    """

    output: str
    status: int = EXIT_OK
    confirmation: Confirmation | None = None
    end_session: bool = False

    @property
    def ok(self) -> bool:
        return self.status == EXIT_OK


class CommandError(Exception):
    """Stops a command with a one-line message and a non-zero exit status."""

    status = EXIT_FAILED


class UsageError(CommandError):
    """The command line is malformed: unknown command, wrong arguments."""

    status = EXIT_USAGE
