"""``[backend.<name>]``: the key managers keystores use, by kind.

Each backend table names its ``kind``; the kind decides which keys the table
takes and what typed settings they become. Only ``cryptohub`` exists so far
(the host protocol over mutual TLS, ``sidecar.backends.cryptohub``). A kind
is added here (its settings) and in ``sidecar.backends`` (how to open it).

Durations are written in milliseconds (``timeout_ms``), since the numbers
that matter here are fractions of KMS's 250 ms budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.backends.cryptohub.settings import (
    CryptoHubConfigError,
    CryptoHubSettings,
    NodeSettings,
)
from sidecar.config_reader import Table
from sidecar.config_secrets import check_private_file
from sidecar.xks.responses import MAX_EKM_NODES

CRYPTOHUB = "cryptohub"

BackendKindSettings = CryptoHubSettings


@dataclass(frozen=True, slots=True)
class BackendSettings:
    name: str
    kind: str
    settings: BackendKindSettings

    @property
    def node_names(self) -> tuple[str, ...]:
        """The HSM nodes GetHealthStatus reports, by configured name."""
        return tuple(node.name for node in self.settings.nodes)


def backend_settings(top: Table) -> dict[str, BackendSettings]:
    """Every ``[backend.<name>]`` table, by name."""
    tables = top.table("backend", required=True)
    backends = {}
    for name in tables.names():
        table = tables.table(name)
        backends[name] = _backend(name, table)
        table.finish()
    if not backends:
        raise tables.error(None, "empty; add a [backend.<name>] table")
    return backends


def _backend(name: str, table: Table) -> BackendSettings:
    kind = table.choice("kind", CRYPTOHUB, sorted(_KINDS))
    try:
        settings = _KINDS[kind](table)
    except CryptoHubConfigError as exc:
        raise table.error(None, str(exc)) from exc
    return BackendSettings(name, kind, settings)


def _cryptohub(table: Table) -> CryptoHubSettings:
    d = _CryptoHubDefaults()
    nodes = tuple(_node(node, table) for node in table.tables("node"))
    if not nodes:
        raise table.error("node", f"missing; add a [[{table.name}.node]] table")
    if len(nodes) > MAX_EKM_NODES:
        # GetHealthStatus reports one ekmFleetDetails entry per node, 1 to 10.
        raise table.error("node", f"more than {MAX_EKM_NODES} nodes")
    return CryptoHubSettings(
        nodes=nodes,
        pool_size=table.integer("pool_size", d.pool_size, 1, 64),
        request_timeout_s=table.milliseconds("timeout_ms", d.request_timeout_s),
        connect_timeout_s=table.milliseconds("connect_timeout_ms", d.connect_timeout_s),
        node_backoff_s=table.milliseconds("node_backoff_ms", d.node_backoff_s),
        node_backoff_max_s=table.milliseconds(
            "node_backoff_max_ms", d.node_backoff_max_s
        ),
        describe_cache_ttl_s=table.integer(
            "describe_cache_ttl_ms", round(d.describe_cache_ttl_s * 1000), 0, 60_000
        )
        / 1000,
        health_timeout_s=table.milliseconds("health_timeout_ms", d.health_timeout_s),
        health_slow_s=table.milliseconds("health_slow_ms", d.health_slow_s),
        max_frame_bytes=table.integer(
            "max_frame_bytes", d.max_frame_bytes, 1024, 16 << 20
        ),
    )


class _CryptoHubDefaults:
    """CryptoHubSettings' own defaults, read off the dataclass by name."""

    def __getattr__(self, name: str) -> Any:
        for f in dataclasses.fields(CryptoHubSettings):
            if f.name == name:
                return f.default
        raise AttributeError(name)


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


_KINDS: dict[str, Callable[[Table], BackendKindSettings]] = {CRYPTOHUB: _cryptohub}
KINDS = frozenset(_KINDS)
