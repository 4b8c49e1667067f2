"""The CryptoHub backend: a KeyManager speaking the host protocol over mTLS.

Modules, each with one job:

    settings    CryptoHubSettings, NodeSettings (frozen, checked once)
    tls         the client TLS context and the connect-and-handshake step
    protocol    request fields and reply parsing (sans-IO)
    errors      link failures, and result codes mapped to XKS errors
    connection  one pipelined connection: writer, reader, waiters by ID
    node        a node's connection pool and its down/up state
    cache       describe_key's short-lived, single-flight cache
    health      the deep probe of each node
    backend     CryptoHubBackend: routing, failover, deadlines

docs/backend-cryptohub.md is the prose version.
"""

from sidecar.backends.base import NodeState, NodeStatus
from sidecar.backends.cryptohub.backend import CryptoHubBackend, open_cryptohub_backend
from sidecar.backends.cryptohub.settings import (
    CryptoHubConfigError,
    CryptoHubSettings,
    NodeSettings,
)

__all__ = [
    "CryptoHubBackend",
    "CryptoHubConfigError",
    "CryptoHubSettings",
    "NodeSettings",
    "NodeState",
    "NodeStatus",
    "open_cryptohub_backend",
]
