"""Typed settings of the data plane listener.

The sidecar's configuration module reads TOML and builds these; the data plane
only consumes them. Every value is checked once here, at construction, so a
running listener never meets a nonsense limit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class ParserName(enum.StrEnum):
    """Which HTTP/1.1 parser library backs the listener (docs/dataplane.md)."""

    HTTPTOOLS = "httptools"  # the default: measured faster on the full path
    H11 = "h11"


def kms_client_common_name(region: str) -> str:
    """The subject CN AWS KMS presents in ``region`` (spec, "Authentication")."""
    return f"cks.kms.{region}.amazonaws.com"


@dataclass(frozen=True, slots=True)
class MutualTlsSettings:
    """Whom the listener accepts as a TLS client when mTLS is on.

    The spec ("Authentication") requires both parts to be configurable: the
    trust anchors (Amazon Trust Services in production) and the subject name.
    """

    ca_bundle: Path
    client_common_name: str

    @classmethod
    def for_region(cls, ca_bundle: Path, region: str) -> MutualTlsSettings:
        return cls(ca_bundle, kms_client_common_name(region))


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The server certificate and the optional client authentication.

    The key passphrase comes from a file or an environment variable, never
    from the command line, where any local user could read it in ``ps``.
    """

    certificate_chain: Path  # leaf first, then intermediates: the full chain
    private_key: Path
    key_passphrase_file: Path | None = None
    key_passphrase_env: str | None = None
    mutual_tls: MutualTlsSettings | None = None
    # Chosen without measuring: ample for a handshake over a slow link, short
    # enough that a stalled client cannot hold a connection slot for long.
    handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.key_passphrase_file and self.key_passphrase_env:
            raise ValueError(
                "tls: set key_passphrase_file or key_passphrase_env, not both"
            )
        _require_positive("tls.handshake_timeout", self.handshake_timeout)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Size limits and timeouts of the HTTP/1.1 layer.

    ``max_body_bytes``: the largest XKS request is an Encrypt of the spec's
    4300-byte plaintext with the 8192-byte AAD: 5736 + 10924 bytes of base64
    plus request metadata, whose ARNs may reach 2048 characters each (spec,
    "API operations"), about 24 KiB in all. 64 KiB leaves more than twice that
    and still bounds what one connection can make us buffer.

    ``max_header_bytes``: request line plus headers. An XKS request carries a
    URI of at most 256 characters and a SigV4 Authorization header of a few
    hundred bytes; 16 KiB matches h11's default and common servers' limits.
    """

    max_header_bytes: int = 16 * 1024
    max_header_count: int = 64
    max_body_bytes: int = 64 * 1024
    # Timeouts in seconds, chosen without measuring. KMS gives up on any call
    # after 250 ms (spec, "GetHealthStatus"), so a request still arriving after
    # 10 s is from something that is not KMS.
    request_timeout: float = 10.0  # first byte of a request to its last byte
    idle_timeout: float = 60.0  # keep-alive: wait for the next request
    send_timeout: float = 10.0  # writing one response
    max_requests_per_connection: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_header_count", "max_body_bytes"):
            _require_positive(f"limits.{name}", getattr(self, name))
        for name in ("request_timeout", "idle_timeout", "send_timeout"):
            _require_positive(f"limits.{name}", getattr(self, name))
        if self.max_requests_per_connection is not None:
            _require_positive(
                "limits.max_requests_per_connection", self.max_requests_per_connection
            )


@dataclass(frozen=True, slots=True)
class DataplaneConfig:
    """Where and how the data plane listens.

    ``tls=None`` serves plain HTTP, and only with the explicit development
    flag: the spec ("Authentication") requires HTTPS between KMS and the proxy.
    """

    host: str = "127.0.0.1"
    port: int = 8443
    tls: TlsSettings | None = None
    allow_plaintext_for_development: bool = False
    limits: HttpLimits = field(default_factory=HttpLimits)
    parser: ParserName = ParserName.HTTPTOOLS
    max_connections: int | None = None
    # SO_REUSEPORT lets several worker processes bind the same port and have
    # the kernel spread connections among them.
    reuse_port: bool = False
    backlog: int = 512  # chosen without measuring; the kernel caps it anyway
    shutdown_grace: float = 10.0  # how long in-flight requests may finish
    # A plain-HTTP GET /ping listener for load balancers that cannot do mTLS
    # (spec, "Load balancer health checks"); None leaves it off.
    ping_port: int | None = None
    ping_host: str | None = None  # defaults to ``host``

    def __post_init__(self) -> None:
        if self.tls is None and not self.allow_plaintext_for_development:
            raise ValueError(
                "dataplane: tls is not configured; plain HTTP needs "
                "allow_plaintext_for_development = true (never in production)"
            )
        if self.max_connections is not None:
            _require_positive("dataplane.max_connections", self.max_connections)
        _require_positive("dataplane.backlog", self.backlog)
        if self.shutdown_grace < 0:
            raise ValueError("dataplane.shutdown_grace must not be negative")


def _require_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
