"""The token user PIN: read from a private file or a variable, never shown.

A PIN comes from a file readable by its owner only, or from an environment
variable; never from the command line, where any local user can read it in
``ps``. ``Pin`` hides its value from ``repr``, ``str`` and f-strings, so a
settings object can be logged or printed whole; ``reveal()`` is the one way
to the value, and only the login call uses it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

# PKCS#11 PINs are short (SoftHSMv2 allows 4 to 255 bytes); a bigger file is
# the wrong file.
_MAX_PIN_FILE_BYTES: Final = 4096


class PinSourceError(ValueError):
    """The PIN file or variable is missing, unsafe or empty (no value inside)."""


class Pin:
    """A PIN whose value never appears in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise PinSourceError("the PIN is empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Pin('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


def read_pin_file(path: Path) -> Pin:
    """The PIN in ``path``: one line, in a file only its owner may read."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise PinSourceError(f"PIN file {path} is not a regular file")
        if mode & 0o077:
            raise PinSourceError(
                f"PIN file {path} is open to group or others; chmod 600 {path}"
            )
        raw = path.read_bytes()[: _MAX_PIN_FILE_BYTES + 1]
    except OSError as exc:
        raise PinSourceError(f"cannot read PIN file {path}: {exc.strerror}") from exc
    if len(raw) > _MAX_PIN_FILE_BYTES:
        raise PinSourceError(f"PIN file {path} is too large to hold a PIN")
    try:
        # One trailing newline is how editors and `echo` end a file.
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise PinSourceError(f"PIN file {path} is not UTF-8 text") from exc
    if not text:
        raise PinSourceError(f"PIN file {path} is empty")
    return Pin(text)


def read_pin_env(variable: str, env: Mapping[str, str] | None = None) -> Pin:
    """The PIN in environment variable ``variable``."""
    value = (os.environ if env is None else env).get(variable)
    if not value:
        raise PinSourceError(f"environment variable {variable} is unset or empty")
    return Pin(value)
