"""``[backend.<name>]``: the key managers keystores use, by kind.

Each backend table names its ``kind``; the kind decides which keys the table
takes and what typed settings they become:

    cryptohub   the host protocol over mutual TLS (``sidecar.backends.cryptohub``)
    pkcs11      any PKCS#11 token: a Futurex device through libfxpkcs11.so, or
                SoftHSMv2 (``sidecar.backends.pkcs11``)

A kind is added here (its settings) and in ``sidecar.backends`` (how to open
it). The PKCS#11 driver needs python-pkcs11, an optional install, so its
settings are imported only when a ``pkcs11`` table is read.

Durations are written in milliseconds (``timeout_ms``), since the numbers
that matter here are fractions of KMS's 250 ms budget.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.backends.cryptohub.settings import (
    CryptoHubConfigError,
    CryptoHubSettings,
    NodeSettings,
)
from sidecar.config_reader import Table
from sidecar.config_secrets import check_private_file, read_secret
from sidecar.xks.responses import MAX_EKM_NODES

if TYPE_CHECKING:
    from sidecar.backends.pkcs11.settings import Pkcs11Settings

CRYPTOHUB = "cryptohub"
PKCS11 = "pkcs11"

# What a POSIX shell accepts as a variable name; anything else in an
# [backend.<name>.environment] table is a typo.
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class BackendSettings:
    name: str
    kind: str
    settings: CryptoHubSettings | Pkcs11Settings

    @property
    def node_names(self) -> tuple[str, ...]:
        """The HSM nodes GetHealthStatus reports, by configured name.

        A PKCS#11 backend has one "node", the token, named as configured
        (its label, or its serial number): the name its probe reports.
        """
        if isinstance(self.settings, CryptoHubSettings):
            return tuple(node.name for node in self.settings.nodes)
        return (self.settings.token_name,)


def backend_settings(
    top: Table, env: Mapping[str, str] | None = None
) -> dict[str, BackendSettings]:
    """Every ``[backend.<name>]`` table, by name.

    ``env`` (default ``os.environ``) is where ``*_env`` secrets are looked up.
    """
    environ = os.environ if env is None else env
    tables = top.table("backend", required=True)
    backends = {}
    for name in tables.names():
        table = tables.table(name)
        backends[name] = _backend(name, table, environ)
        table.finish()
    if not backends:
        raise tables.error(None, "empty; add a [backend.<name>] table")
    return backends


def _backend(name: str, table: Table, env: Mapping[str, str]) -> BackendSettings:
    kind = table.choice("kind", CRYPTOHUB, sorted(_KINDS))
    try:
        settings = _KINDS[kind](table, env)
    except CryptoHubConfigError as exc:
        raise table.error(None, str(exc)) from exc
    return BackendSettings(name, kind, settings)


# -- cryptohub ---------------------------------------------------------------------


def _cryptohub(table: Table, env: Mapping[str, str]) -> CryptoHubSettings:
    d = _Defaults(CryptoHubSettings)
    nodes = tuple(_node(node, table) for node in table.tables("node"))
    if not nodes:
        raise table.error("node", f"missing; add a [[{table.name}.node]] table")
    if len(nodes) > MAX_EKM_NODES:
        # GetHealthStatus reports one ekmFleetDetails entry per node, 1 to 10.
        raise table.error("node", f"more than {MAX_EKM_NODES} nodes")
    return CryptoHubSettings(
        nodes=nodes,
        pool_size=table.integer("pool_size", d.pool_size, 1, 64),
        pipeline_depth=table.integer("pipeline_depth", d.pipeline_depth, 1, 4096),
        request_timeout_s=table.milliseconds("timeout_ms", d.request_timeout_s),
        connect_timeout_s=table.milliseconds("connect_timeout_ms", d.connect_timeout_s),
        node_backoff_s=table.milliseconds("node_backoff_ms", d.node_backoff_s),
        node_backoff_max_s=table.milliseconds(
            "node_backoff_max_ms", d.node_backoff_max_s
        ),
        describe_cache_ttl_s=_cache_ttl(table, d.describe_cache_ttl_s),
        health_timeout_s=table.milliseconds("health_timeout_ms", d.health_timeout_s),
        health_slow_s=table.milliseconds("health_slow_ms", d.health_slow_s),
        max_frame_bytes=table.integer(
            "max_frame_bytes", d.max_frame_bytes, 1024, 16 << 20
        ),
    )


class _Defaults:
    """A settings dataclass's own defaults, read off its fields by name."""

    def __init__(self, settings_class: type) -> None:
        self._fields = {f.name: f.default for f in dataclasses.fields(settings_class)}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None


def _cache_ttl(table: Table, default_s: float) -> float:
    # 0 is allowed here (ask every time), unlike the other durations.
    default_ms = round(default_s * 1000)
    return table.integer("describe_cache_ttl_ms", default_ms, 0, 60_000) / 1000


def _node(node: Table, backend: Table) -> NodeSettings:
    """One node; its TLS files default to the ones the backend table names."""
    settings = NodeSettings(
        name=node.text("name"),
        host=node.text("host"),
        port=node.integer("port", 9100, 1, 65535),
        server_ca=_file(node, backend, "server_ca"),
        client_cert=_file(node, backend, "client_cert"),
        client_key=_file(node, backend, "client_key"),
        server_name=node.optional_text("server_name"),
    )
    node.finish()
    return settings


def _file(node: Table, backend: Table, key: str) -> Path:
    shared = backend.optional_path(key)
    owner = node if node.has(key) or shared is None else backend
    path = owner.existing_file(key)
    if key == "client_key":
        check_private_file(owner, key, path)
    return path


# -- pkcs11 ------------------------------------------------------------------------


def _pkcs11(table: Table, env: Mapping[str, str]) -> Pkcs11Settings:
    """docs/backend-pkcs11.md, "Settings", is the table this reads."""
    try:
        from sidecar.backends.pkcs11 import settings as p11
        from sidecar.backends.pkcs11.pin import Pin, PinSourceError
    except ImportError as exc:
        if exc.name != "pkcs11":
            raise
        raise table.error(
            "kind",
            "the pkcs11 backend needs python-pkcs11; install it:"
            " pip install 'cryptohub-xks[pkcs11]'",
        ) from exc
    d = _Defaults(p11.Pkcs11Settings)
    label, serial = _token(table)
    try:
        user_pin = Pin(read_secret(table, "user_pin", env))
        return p11.Pkcs11Settings(
            module_path=_module(table),
            user_pin=user_pin,
            token_label=label,
            token_serial=serial,
            pool_size=table.integer("pool_size", d.pool_size, 1, 256),
            call_timeout_s=table.milliseconds("timeout_ms", d.call_timeout_s),
            iv_source=p11.IvSource(_choice(table, "iv_source", d.iv_source)),
            key_id_attribute=p11.KeyIdAttribute(
                _choice(table, "key_id_attribute", d.key_id_attribute)
            ),
            health_key_id=_health_key_id(table, d.health_key_id),
            describe_cache_ttl_s=_cache_ttl(table, d.describe_cache_ttl_s),
            health_timeout_s=table.milliseconds(
                "health_timeout_ms", d.health_timeout_s
            ),
            health_slow_s=table.milliseconds("health_slow_ms", d.health_slow_s),
            close_timeout_s=table.integer(
                "close_timeout_ms", round(d.close_timeout_s * 1000), 0, 600_000
            )
            / 1000,
            module_environment=_environment(table),
        )
    except (p11.Pkcs11ConfigError, PinSourceError) as exc:
        raise table.error(None, str(exc)) from exc


def _module(table: Table) -> Path:
    path = table.optional_path("module")
    if path is None:
        raise table.error(
            "module",
            "missing; add the path of the PKCS#11 library (e.g."
            " /usr/lib/softhsm/libsofthsm2.so, or Futurex's libfxpkcs11.so)",
        )
    if not path.is_file():
        raise table.error(
            "module",
            f"{path} is not a file; install the PKCS#11 library (SoftHSMv2:"
            " apt-get install softhsm2) or correct the path",
        )
    return path


def _token(table: Table) -> tuple[str | None, str | None]:
    label = table.optional_text("token_label")
    serial = table.optional_text("token_serial")
    if label is not None and serial is not None:
        raise table.error("token_serial", "set token_label or token_serial, not both")
    if label is None and serial is None:
        raise table.error(
            "token_label", "missing; name the token by token_label or token_serial"
        )
    return label, serial


def _choice(table: Table, key: str, default: Any) -> str:
    return table.choice(key, str(default), [m.value for m in type(default)])


def _health_key_id(table: Table, default: str) -> str:
    from sidecar.backends.pkcs11.labels import check_external_key_id

    key_id = table.text("health_key_id", default)
    try:
        check_external_key_id(key_id)
    except ValueError as exc:
        raise table.error("health_key_id", str(exc)) from exc
    return key_id


def _environment(backend: Table) -> tuple[tuple[str, str], ...]:
    """``[backend.<name>.environment]``: variables the module reads when loaded.

    FXPKCS11_CFG (Futurex) and SOFTHSM2_CONF (SoftHSMv2) name the module's
    own configuration file. A value that starts with ``./`` or ``../`` is a
    path relative to this configuration file's folder, like every other path
    here, and is passed on made absolute; any other value is passed as written.
    """
    table = backend.table("environment")
    pairs = []
    for name, value in table.raw().items():
        if not _VARIABLE_NAME.fullmatch(name):
            raise table.error(name, "is not an environment variable name")
        if not isinstance(value, str) or not value:
            raise table.error(name, f"must be a non-empty string, not {value!r}")
        if value.startswith(("./", "../")):
            value = str((table.base / value).resolve())
        pairs.append((name, value))
    return tuple(pairs)


_KINDS: dict[
    str, Callable[[Table, Mapping[str, str]], CryptoHubSettings | Pkcs11Settings]
] = {CRYPTOHUB: _cryptohub, PKCS11: _pkcs11}
KINDS = frozenset(_KINDS)
