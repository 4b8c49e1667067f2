"""``sidecar.client_tls``: the lean TLS client stream, against a real server.

The server is Trio's own ``SSLStream`` over a TCP listener on port 0, with
the simulator's certificate; the client verifies it and presents the
sidecar's HSM client certificate, as on the host link.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import pytest
import trio

from fixtures.pki import Pki
from sidecar.client_tls import ClientTlsStream, open_client_tls_stream

ServerScript = Callable[[trio.SSLStream[trio.SocketStream]], Awaitable[None]]


def _contexts(pki: Pki) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.simulator_server_chain, pki.simulator_server_key)
    server.load_verify_locations(pki.sim_ca_cert)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(pki.sim_ca_cert))
    client.load_cert_chain(pki.sidecar_hsm_client_cert, pki.sidecar_hsm_client_key)
    client.options |= ssl.OP_NO_RENEGOTIATION
    return server, client


async def _connect(
    pki: Pki, nursery: trio.Nursery, script: ServerScript
) -> ClientTlsStream:
    server_context, client_context = _contexts(pki)

    async def serve(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, server_context, server_side=True)
        await stream.do_handshake()
        await script(stream)

    listeners = await nursery.start(trio.serve_tcp, serve, 0)
    port = listeners[0].socket.getsockname()[1]
    return await open_client_tls_stream("127.0.0.1", port, client_context, "localhost")


async def _echo(stream: trio.SSLStream[trio.SocketStream]) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


async def _receive_exactly(stream: ClientTlsStream, size: int) -> bytes:
    received = b""
    while len(received) < size:
        chunk = await stream.receive_some()
        assert chunk, "closed early"
        received += chunk
    return received


async def test_exchanges_messages_larger_than_a_record(
    pki: Pki, nursery: trio.Nursery
) -> None:
    client = await _connect(pki, nursery, _echo)
    message = bytes(range(256)) * 160  # 40 KiB: three TLS records
    for _ in range(3):
        await client.send_all(message)
        assert await _receive_exactly(client, len(message)) == message
    await client.aclose()


async def test_a_reply_sent_in_small_pieces_is_reassembled(
    pki: Pki, nursery: trio.Nursery
) -> None:
    async def dribble(stream: trio.SSLStream[trio.SocketStream]) -> None:
        await stream.receive_some()
        for byte in b"[AOECHO;ER00;]":
            await stream.send_all(bytes([byte]))
            await trio.sleep(0.001)

    client = await _connect(pki, nursery, dribble)
    await client.send_all(b"go")

    assert await _receive_exactly(client, 14) == b"[AOECHO;ER00;]"
    await client.aclose()


async def test_close_notify_from_the_server_reads_as_end_of_stream(
    pki: Pki, nursery: trio.Nursery
) -> None:
    async def bye(stream: trio.SSLStream[trio.SocketStream]) -> None:
        await stream.send_all(b"last")
        await stream.aclose()

    client = await _connect(pki, nursery, bye)

    assert await _receive_exactly(client, 4) == b"last"
    with trio.fail_after(5):
        assert await client.receive_some() == b""
    await client.aclose()


async def test_tcp_close_without_close_notify_breaks_the_stream(
    pki: Pki, nursery: trio.Nursery
) -> None:
    async def vanish(stream: trio.SSLStream[trio.SocketStream]) -> None:
        await stream.transport_stream.send_eof()  # a FIN, no close_notify
        await trio.sleep(10)  # the socket stays open: no reset

    client = await _connect(pki, nursery, vanish)

    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        await client.receive_some()
    await client.aclose()


async def test_a_waiting_receive_can_be_cancelled_and_the_stream_reused(
    pki: Pki, nursery: trio.Nursery
) -> None:
    async def late_echo(stream: trio.SSLStream[trio.SocketStream]) -> None:
        data = await stream.receive_some()
        await stream.send_all(data)

    client = await _connect(pki, nursery, late_echo)
    with trio.move_on_after(0.05):
        await client.receive_some()

    await client.send_all(b"still here")
    assert await _receive_exactly(client, 10) == b"still here"
    await client.aclose()


async def test_send_nowait_sends_at_once_when_the_socket_has_room(
    pki: Pki, nursery: trio.Nursery
) -> None:
    client = await _connect(pki, nursery, _echo)

    assert client.send_nowait(b"[AOECHO;ID1;]") is True
    assert await _receive_exactly(client, 13) == b"[AOECHO;ID1;]"
    await client.aclose()


async def test_send_nowait_into_a_full_socket_queues_the_rest_in_order(
    pki: Pki, nursery: trio.Nursery
) -> None:
    reading, done = trio.Event(), trio.Event()
    received: list[bytes] = []

    async def slow_reader(stream: trio.SSLStream[trio.SocketStream]) -> None:
        await reading.wait()  # until then the client's send buffer fills up
        while data := await stream.receive_some():
            received.append(bytes(data))
        done.set()

    client = await _connect(pki, nursery, slow_reader)
    chunk = bytes(range(256)) * 256  # 64 KiB
    sent = 0
    # Synchronous: were it to wait for the reader, the test would hang here.
    while client.send_nowait(chunk):
        sent += 1
    sent += 1  # the chunk that did not fit whole is queued, not lost
    assert client.send_nowait(b"END") is False  # behind the queued bytes

    reading.set()
    with trio.fail_after(5):
        await client.flush()
        await client.aclose()
        await done.wait()

    assert b"".join(received) == chunk * sent + b"END"
