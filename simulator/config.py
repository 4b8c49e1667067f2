"""The simulator's configuration: one TOML file, read and checked once.

``load_config`` turns the file into frozen dataclasses or raises ConfigError
naming the file, the key and what to do about it, so a bad setting stops the
simulator at start-up instead of surfacing as a strange failure later.
Relative paths are resolved against the directory of the file, so a
configuration works from any working directory. Secrets (the master key) come
from a file or the environment, never from here inline or from the command
line. ``fixtures/dev/simulator.toml`` shows every key.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simulator.console.context import ConsoleSettings
from simulator.hostproto.codec import DEFAULT_MAX_FRAME_BYTES


class ConfigError(Exception):
    """The configuration file is missing, unreadable or has a bad setting."""


@dataclass(frozen=True)
class NodeSettings:
    """The identity the NODE command reports."""

    node_id: str = "cryptohub-sim-1"
    model: str = "CryptoHub Simulator"
    version: str = "0.1.0"
    serial: str = "SIM000001"


@dataclass(frozen=True)
class HostSettings:
    """The host-protocol listener (mutual TLS)."""

    listen: str
    port: int
    cert: Path  # server certificate chain, leaf first
    key: Path
    client_ca: Path  # the only CA whose client certificates are accepted
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_in_flight: int = 64  # per connection; chosen, not measured
    idle_timeout_s: float = 300.0
    handshake_timeout_s: float = 10.0


@dataclass(frozen=True)
class StoreSettings:
    """Where keys live and how the master key is found."""

    path: Path
    master_key_file: Path | None  # None: the CRYPTOHUB_SIM_MASTER_KEY variable
    seed: bool = False  # create the standard test keys in an empty store


@dataclass(frozen=True)
class SimulatorConfig:
    source: Path
    node: NodeSettings
    host: HostSettings
    console: ConsoleSettings
    store: StoreSettings


def load_config(path: Path) -> SimulatorConfig:
    """Read and validate the configuration at ``path``."""
    document = _read_toml(path)
    base = path.resolve().parent
    sections = {
        name: _Section(path, base, name, _table(path, document, name))
        for name in ("node", "host", "console", "store")
    }
    _reject_unknown(path, "top level", document, sections)
    config = SimulatorConfig(
        source=path,
        node=_node(sections["node"]),
        host=_host(sections["host"]),
        console=_console(sections["console"]),
        store=_store(sections["store"]),
    )
    for section in sections.values():
        section.finish()
    return config


def _node(section: _Section) -> NodeSettings:
    defaults = NodeSettings()
    return NodeSettings(
        node_id=section.text("id", defaults.node_id),
        model=section.text("model", defaults.model),
        version=section.text("version", defaults.version),
        serial=section.text("serial", defaults.serial),
    )


def _host(section: _Section) -> HostSettings:
    return HostSettings(
        listen=section.text("listen", "127.0.0.1"),
        port=section.port("port", 9100),
        cert=section.existing_file("cert"),
        key=section.existing_file("key"),
        client_ca=section.existing_file("client_ca"),
        max_frame_bytes=section.integer(
            "max_frame_bytes", DEFAULT_MAX_FRAME_BYTES, 1024, 16 * 1024 * 1024
        ),
        max_in_flight=section.integer("max_in_flight", 64, 1, 4096),
        idle_timeout_s=section.seconds("idle_timeout_s", 300.0),
        handshake_timeout_s=section.seconds("handshake_timeout_s", 10.0),
    )


def _console(section: _Section) -> ConsoleSettings:
    return ConsoleSettings(
        listen=section.text("listen", "127.0.0.1"),
        port=section.port("port", 2222),
        host_key=section.existing_file("host_key"),
        authorized_keys=section.existing_file("authorized_keys"),
    )


def _store(section: _Section) -> StoreSettings:
    return StoreSettings(
        path=section.path("path"),
        master_key_file=section.optional_path("master_key_file"),
        seed=section.boolean("seed", False),
    )


# --- reading the document ------------------------------------------------------

_REQUIRED_SECTIONS = frozenset({"host", "console", "store"})


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such configuration file; pass --config with the path "
            "of a simulator.toml (see fixtures/dev/simulator.toml)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _table(path: Path, document: dict[str, object], name: str) -> dict[str, object]:
    table = document.get(name)
    if table is None and name not in _REQUIRED_SECTIONS:
        return {}
    if table is None:
        raise ConfigError(f"{path}: missing section [{name}]; add it")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {name} must be a table; write it as [{name}]")
    return table


def _reject_unknown(
    path: Path, where: str, given: Iterable[str], known: Iterable[str]
) -> None:
    names = sorted(known)
    for key in given:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use one of {names}"
            raise ConfigError(f"{path}: {where}: unknown key {key!r}; {hint}")


class _Section:
    """One table of the file; typed getters that remember which keys were read.

    Each getter raises ConfigError worded as ``<file>: [<section>] <key>: <what
    is wrong>; <fix>``.
    """

    def __init__(
        self, path: Path, base: Path, name: str, table: dict[str, object]
    ) -> None:
        self._path = path
        self._base = base
        self._name = name
        self._table = table
        self._read: set[str] = set()

    def finish(self) -> None:
        """Refuse keys no getter asked for: most often a typo."""
        _reject_unknown(self._path, f"[{self._name}]", self._table, self._read)

    def _error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._path}: [{self._name}] {key}: {problem}")

    def _get(self, key: str, kind: type | tuple[type, ...], expected: str) -> object:
        self._read.add(key)
        value = self._table.get(key)
        # bool is a subclass of int; "port = true" must not read as port 1.
        wrong_bool = isinstance(value, bool) and bool not in _as_tuple(kind)
        if value is not None and (wrong_bool or not isinstance(value, kind)):
            raise self._error(key, f"must be {expected}, not {value!r}")
        return value

    def text(self, key: str, default: str) -> str:
        value = self._get(key, str, "a string")
        if value == "":
            raise self._error(key, "must not be empty; remove it to use the default")
        return default if value is None else str(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key, int, "a whole number")
        if value is None:
            return default
        assert isinstance(value, int)
        if not low <= value <= high:
            raise self._error(key, f"must be between {low} and {high}, not {value}")
        return value

    def port(self, key: str, default: int) -> int:
        """A TCP port; 0 asks the system for a free one."""
        return self.integer(key, default, 0, 65535)

    def seconds(self, key: str, default: float) -> float:
        value = self._get(key, (int, float), "a number of seconds")
        if value is None:
            return default
        assert isinstance(value, int | float)
        if not 0 < value <= 86400:
            raise self._error(key, f"must be above 0 and at most 86400, not {value}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def optional_path(self, key: str) -> Path | None:
        value = self._get(key, str, "a path")
        if value is None:
            return None
        if value == "":
            raise self._error(key, "must not be empty; remove it if unused")
        return (self._base / Path(str(value)).expanduser()).resolve()

    def path(self, key: str) -> Path:
        found = self.optional_path(key)
        if found is None:
            raise self._error(key, "missing; add it (a path, relative to this file)")
        return found

    def existing_file(self, key: str) -> Path:
        found = self.path(key)
        if not found.is_file():
            raise self._error(
                key,
                f"{found} is not a file; check the path, or mint the development "
                "PKI with: python -m fixtures mint --out var/pki",
            )
        return found


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
