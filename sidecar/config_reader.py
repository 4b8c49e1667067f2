"""Typed reading of one TOML table, with errors that name file, key and fix.

``Table`` wraps one table of the sidecar's configuration file. Each getter
checks the value's type and range and raises ``ConfigError`` worded as::

    <file>: [<table>] <key>: <what is wrong>; <how to fix it>

Every getter records the key it read, so ``finish()`` can refuse the keys no
getter asked for: in a configuration file an unknown key is almost always a
typo, and a silently ignored typo (``secret_acess_key_file``) is a setting the
operator believes is in force but is not.

Relative paths are resolved against the folder of the configuration file, so
the sidecar reads the same files whoever starts it and from where.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

# The largest duration any setting may take, in seconds: a day. Anything
# longer is a unit mistake (milliseconds written into a seconds key).
MAX_SECONDS = 86400.0


class ConfigError(Exception):
    """The configuration file is missing, unreadable or has a bad setting."""


class Table:
    """One TOML table and where it sits in the file, for error messages."""

    def __init__(
        self,
        source: Path,
        name: str,
        data: dict[str, object],
        where: str | None = None,
    ) -> None:
        self.source = source
        self.base = source.resolve().parent
        self.name = name  # dotted TOML name: "keystore.policy"
        self.where = where or (f"[{name}]" if name else "top level")
        self._data = data
        self._read: set[str] = set()

    # -- structure -------------------------------------------------------------

    def error(self, key: str | None, problem: str) -> ConfigError:
        """A ConfigError located at ``key`` of this table (or the table)."""
        at = f"{self.where} {key}" if key else self.where
        return ConfigError(f"{self.source}: {at}: {problem}")

    def has(self, key: str) -> bool:
        return key in self._data

    @property
    def is_empty(self) -> bool:
        return not self._data

    def finish(self) -> None:
        """Refuse keys no getter asked for: most often a typo."""
        known = sorted(self._read)
        for key in self._data:
            if key not in self._read:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "remove it"
                raise self.error(None, f"unknown key {key!r}; {hint}")

    def table(self, key: str, *, required: bool = False) -> Table:
        """The sub-table ``[<this>.<key>]``; empty when absent and optional."""
        value = self._get(key, dict, "a table")
        name = self._child_name(key)
        if value is None and required:
            raise self.error(key, f"missing; add a [{name}] table")
        data = value if isinstance(value, dict) else {}
        return Table(self.source, name, data, self._child_where(f"[{name}]"))

    def tables(self, key: str) -> Iterator[Table]:
        """The array of tables ``[[<this>.<key>]]``, each named by position."""
        value = self._get(key, list, "an array of tables")
        name = self._child_name(key)
        for index, item in enumerate(value if isinstance(value, list) else [], 1):
            if not isinstance(item, dict):
                raise self.error(key, f"entry #{index} must be a table")
            where = self._child_where(f"[[{name}]] #{index}")
            yield Table(self.source, name, item, where)

    def names(self) -> list[str]:
        """The keys present, marked as read (for tables of named sub-tables)."""
        self._read.update(self._data)
        return list(self._data)

    def raw(self) -> dict[str, object]:
        """The table as parsed, for a consumer that checks its own keys."""
        self._read.update(self._data)
        return dict(self._data)

    def _child_name(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def _child_where(self, label: str) -> str:
        # Inside an array entry the entry's position tells which one is meant.
        return f"{self.where} {label}" if "#" in self.where else label

    def _get(self, key: str, kind: type | tuple[type, ...], expected: str) -> object:
        self._read.add(key)
        value = self._data.get(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is a subclass of int; "port = true" must not read as port 1.
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if value is not None and (wrong_bool or not isinstance(value, kinds)):
            raise self.error(key, f"must be {expected}, not {value!r}")
        return value

    # -- scalars ---------------------------------------------------------------

    def optional_text(self, key: str) -> str | None:
        value = self._get(key, str, "a string")
        if value == "":
            raise self.error(key, "must not be empty; remove it if unused")
        return value if isinstance(value, str) else None

    def text(self, key: str, default: str | None = None) -> str:
        value = self.optional_text(key)
        if value is not None:
            return value
        if default is None:
            raise self.error(key, "missing; add it")
        return default

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        allowed = list(choices)
        value = self.text(key, default)
        if value not in allowed:
            raise self.error(key, f"must be one of {allowed}, not {value!r}")
        return value

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        value = self._get(key, int, "a whole number")
        if not isinstance(value, int):
            return None
        if not low <= value <= high:
            raise self.error(key, f"must be between {low} and {high}, not {value}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.optional_integer(key, low, high)
        return default if value is None else value

    def port(self, key: str, default: int) -> int:
        """A TCP port; 0 asks the system for a free one."""
        return self.integer(key, default, 0, 65535)

    def seconds(self, key: str, default: float, *, high: float = MAX_SECONDS) -> float:
        """A duration in seconds, above zero and at most ``high``."""
        value = self._get(key, (int, float), "a number of seconds")
        if value is None:
            return default
        assert isinstance(value, int | float)
        if not (0 < value <= high and math.isfinite(value)):
            raise self.error(key, f"must be above 0 and at most {high:g}, not {value}")
        return float(value)

    def milliseconds(self, key: str, default_s: float) -> float:
        """A duration written in milliseconds, returned in seconds."""
        value = self._get(key, int, "a whole number of milliseconds")
        if value is None:
            return default_s
        assert isinstance(value, int)
        if not 0 < value <= MAX_SECONDS * 1000:
            raise self.error(key, f"must be above 0 and at most 86400000, not {value}")
        return value / 1000

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def strings(self, key: str) -> list[str]:
        value = self._get(key, list, "a list of strings")
        if value is None:
            return []
        assert isinstance(value, list)
        if not all(isinstance(item, str) for item in value):
            raise self.error(key, "must be a list of strings")
        return list(value)

    # -- files -----------------------------------------------------------------

    def optional_path(self, key: str) -> Path | None:
        value = self.optional_text(key)
        if value is None:
            return None
        return (self.base / Path(value).expanduser()).resolve()

    def existing_file(self, key: str, default: Path | None = None) -> Path:
        """A path to a file that exists now; ``default`` when the key is absent."""
        found = self.optional_path(key) or default
        if found is None:
            raise self.error(key, "missing; add it (a path, relative to this file)")
        if not found.is_file():
            raise self.error(
                key,
                f"{found} is not a file; check the path (for the development PKI"
                " run: python -m fixtures mint --out var/pki)",
            )
        return found
