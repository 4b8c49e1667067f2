"""Typed settings of the CryptoHub backend.

The sidecar's configuration module maps TOML onto these frozen dataclasses;
the backend only consumes them. Every value is checked here, once, so a
running backend never meets a nonsense limit: ``CryptoHubConfigError`` names
the setting and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sidecar.backends.base import BackendStartupError
from simulator.hostproto.codec import DEFAULT_MAX_FRAME_BYTES


class CryptoHubConfigError(BackendStartupError, ValueError):
    """A CryptoHub backend setting is unusable."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """One CryptoHub node and how to reach it over mutual TLS."""

    name: str  # ours, for logs and the health report; unique per backend
    host: str
    port: int
    server_ca: Path  # the only CA whose server certificates are trusted
    client_cert: Path  # the sidecar's client certificate (chain, leaf first)
    client_key: Path
    # The name checked against the node's certificate and sent as SNI; the
    # host itself when None (right unless the node is reached by IP address).
    server_name: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise CryptoHubConfigError("node name must not be empty")
        if not self.host:
            raise CryptoHubConfigError(f"node {self.name}: host must not be empty")
        if not 0 < self.port < 65536:
            raise CryptoHubConfigError(
                f"node {self.name}: port must be 1 to 65535, not {self.port}"
            )

    @property
    def tls_server_name(self) -> str:
        return self.server_name or self.host


@dataclass(frozen=True, slots=True)
class CryptoHubSettings:
    """The nodes, in order of preference, and how the backend uses them."""

    nodes: tuple[NodeSettings, ...]
    # Connections per node, each carrying many pipelined requests. Two, so a
    # node that serves its connections in parallel gets a second lane when
    # one is deep; chosen, not measured on a real CryptoHub.
    pool_size: int = 2
    # Requests in flight on every open connection before another is opened,
    # and before a request goes anywhere but the first one not that deep.
    # Concentrating requests on one connection batches frames and replies
    # into fewer writes and wake-ups at both ends: at 1,800 requests/s
    # (stack benchmark, docs/performance.md) one connection cost the sidecar
    # and the simulator each about a tenth less CPU per request than two
    # sharing the load. The value is chosen: deeper than the 4-8 requests in
    # flight at that rate, shallow enough that a slow node gets its second
    # lane within a few milliseconds of backlog.
    pipeline_depth: int = 16
    # The bound on one backend call, connection and failover included. KMS
    # gives the whole XKS request 250 ms (spec, GetHealthStatus, KMS
    # Considerations); 150 ms leaves the rest for TLS, HTTP and our own work.
    request_timeout_s: float = 0.150
    # A TLS connect runs in the background, apart from any one request, and is
    # abandoned (node marked down) after this long. Chosen, not measured.
    connect_timeout_s: float = 1.0
    # A failed node is skipped for this long, doubling with each consecutive
    # failure up to the maximum. Short: a node back up should get traffic soon.
    node_backoff_s: float = 0.5
    node_backoff_max_s: float = 5.0
    # describe_key answers from a cache this fresh (see cache.py for why).
    describe_cache_ttl_s: float = 1.0
    # One health probe of one node (NODE, GCEN, GCDE) may take this long
    # before the node counts as UNAVAILABLE; it runs in the background, so it
    # may exceed KMS's 250 ms.
    health_timeout_s: float = 1.0
    # A probe slower than this makes a reachable node DEGRADED: three round
    # trips that take longer than one request's deadline mean the node cannot
    # reliably serve within KMS's budget.
    health_slow_s: float = 0.150
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES

    def __post_init__(self) -> None:
        if not self.nodes:
            raise CryptoHubConfigError("at least one CryptoHub node is required")
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise CryptoHubConfigError(f"node names must be unique: {names}")
        if self.pool_size < 1:
            raise CryptoHubConfigError("pool_size must be at least 1")
        if self.pipeline_depth < 1:
            raise CryptoHubConfigError("pipeline_depth must be at least 1")
        _check_positive(self, "request_timeout_s", "connect_timeout_s")
        _check_positive(self, "node_backoff_s", "node_backoff_max_s")
        _check_positive(self, "health_timeout_s", "health_slow_s")
        if self.describe_cache_ttl_s < 0:
            raise CryptoHubConfigError("describe_cache_ttl_s must not be negative")
        if self.node_backoff_max_s < self.node_backoff_s:
            raise CryptoHubConfigError("node_backoff_max_s is below node_backoff_s")
        if self.max_frame_bytes < 1024:
            raise CryptoHubConfigError("max_frame_bytes must be at least 1024")


def _check_positive(settings: CryptoHubSettings, *names: str) -> None:
    for name in names:
        if not getattr(settings, name) > 0:
            raise CryptoHubConfigError(f"{name} must be above 0")
