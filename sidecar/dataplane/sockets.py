"""Listening sockets for the data plane, ready for several worker processes.

``trio.open_tcp_listeners`` cannot set SO_REUSEPORT, which lets several
worker processes bind the same port and have the kernel spread incoming
connections among them (Linux, BSD); so the sockets are made here.
"""

from __future__ import annotations

import socket

import trio


async def open_listeners(
    host: str, port: int, *, reuse_port: bool, backlog: int
) -> list[trio.SocketListener]:
    """One listener per address ``host`` resolves to; port 0 picks a free one."""
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[trio.socket.SocketType] = []
    bound: set[tuple[object, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, *address) in bound:  # getaddrinfo may repeat itself
                continue
            bound.add((family, *address))
            sock = trio.socket.socket(family, kind, proto)
            sockets.append(sock)
            await _bind(sock, address, reuse_port=reuse_port, backlog=backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return [trio.SocketListener(sock) for sock in sockets]


async def _bind(
    sock: trio.socket.SocketType,
    address: tuple[object, ...],
    *,
    reuse_port: bool,
    backlog: int,
) -> None:
    # SO_REUSEADDR: restart at once while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        # Keep the IPv6 socket off IPv4, which has its own listener.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    await sock.bind(address)
    sock.listen(backlog)


def bound_port(listener: trio.SocketListener) -> int:
    port = listener.socket.getsockname()[1]
    assert isinstance(port, int)
    return port
