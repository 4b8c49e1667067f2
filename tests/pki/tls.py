"""One real TLS handshake between two stdlib ``ssl`` contexts over a socketpair.

The server side runs in a worker thread because blocking ``ssl`` sockets need
both ends driven at once. After the handshake, the client sends one message
and waits for the reply: in TLS 1.3 the server checks the client certificate
after the client considers the handshake done, so only a round trip shows
whether the server accepted it.
"""

from __future__ import annotations

import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

# Generous for a loopback handshake; only reached when a test is broken.
TIMEOUT_S = 5.0
_PING, _PONG = b"ping", b"pong"


@dataclass(frozen=True)
class ServerView:
    version: str | None
    cipher: str | None
    peer_cert: x509.Certificate | None


@dataclass(frozen=True)
class Outcome:
    server: ServerView | None
    server_error: ssl.SSLError | None
    client_error: ssl.SSLError | None

    @property
    def ok(self) -> bool:
        return self.server is not None and self.client_error is None


def server_context(
    chain: Path, key: Path, *, client_ca: Path | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def client_context(
    ca: Path, *, chain: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if chain is not None:
        context.load_cert_chain(chain, key)
    return context


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str
) -> Outcome:
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(TIMEOUT_S)
    client_sock.settimeout(TIMEOUT_S)
    with ThreadPoolExecutor(max_workers=1) as pool:
        served = pool.submit(_serve, server, server_sock)
        client_error = _connect(client, client_sock, server_hostname)
        view, server_error = served.result(timeout=TIMEOUT_S)
    return Outcome(view, server_error, client_error)


def _serve(
    context: ssl.SSLContext, sock: socket.socket
) -> tuple[ServerView | None, ssl.SSLError | None]:
    with sock:
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                view = _view(tls)
                if tls.recv(len(_PING)) == _PING:
                    tls.sendall(_PONG)
                return view, None
        except ssl.SSLError as exc:
            return None, exc


def _connect(
    context: ssl.SSLContext, sock: socket.socket, server_hostname: str
) -> ssl.SSLError | None:
    with sock:
        try:
            with context.wrap_socket(sock, server_hostname=server_hostname) as tls:
                tls.sendall(_PING)
                if tls.recv(len(_PONG)) != _PONG:
                    return ssl.SSLError("server closed without replying")
                return None
        except ssl.SSLError as exc:
            return exc


def _view(tls: ssl.SSLSocket) -> ServerView:
    cipher = tls.cipher()
    peer = tls.getpeercert(binary_form=True)
    return ServerView(
        version=tls.version(),
        cipher=None if cipher is None else cipher[0],
        peer_cert=None if peer is None else x509.load_der_x509_certificate(peer),
    )
