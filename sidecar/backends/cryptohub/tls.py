"""The client side of the mutual-TLS link to a CryptoHub node.

One ``ssl.SSLContext`` per node, built once at start-up: TLS 1.2 or newer,
forward-secret AEAD suites only for 1.2 (any 1.3 suite is acceptable), the
node's certificate verified against that node's configured CA alone (no
system trust store) and checked against its TLS server name, and the
sidecar's client certificate presented, since the node requires one.

The stdlib ``ssl`` module is enough here: the sidecar is the client, and the
client needs no per-connection verification callback beyond what
``check_hostname`` already does. The stream is
``sidecar.client_tls.ClientTlsStream``, a lean stand-in for
``trio.SSLStream``; renegotiation is refused, which that stream relies on.
"""

from __future__ import annotations

import ssl

from sidecar.backends.cryptohub.settings import CryptoHubConfigError, NodeSettings
from sidecar.client_tls import ClientTlsStream, open_client_tls_stream

_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def client_tls_context(node: NodeSettings) -> ssl.SSLContext:
    """The context for ``node``; CryptoHubConfigError if a file is unusable."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=node.server_ca
        )
        context.load_cert_chain(node.client_cert, node.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise CryptoHubConfigError(
            f"node {node.name}: cannot load server_ca {node.server_ca}, "
            f"client_cert {node.client_cert} or client_key {node.client_key}: {exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


async def connect_tls(node: NodeSettings, context: ssl.SSLContext) -> ClientTlsStream:
    """A TCP connection to ``node`` with the TLS handshake done.

    Raises OSError (TCP) or trio.BrokenResourceError (TLS); the caller bounds
    the time. With TLS 1.3 the node checks our certificate after our side of
    the handshake has finished, so a refused client certificate shows up on
    the first read, as a lost connection, not here.
    """
    # One connection carries the replies of many requests: read before
    # waiting (``ClientTlsStream._fill``).
    return await open_client_tls_stream(
        node.host, node.port, context, node.tls_server_name, wait_before_read=False
    )
