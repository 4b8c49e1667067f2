"""The link between the supervisor and one worker: JSON lines on a socket pair.

Each worker process gets one end of a Unix socket pair (``sidecar.workers``
keeps the other). Messages are JSON objects, one per line::

    worker -> supervisor   {"kind": "ready", "ports": {"xks": N, "ping": N}}
    worker -> supervisor   {"kind": "health", "backend": B, "nodes": [...],
                            "age_s": 0.0}          (the probing worker only)
    supervisor -> worker   the same "health" message, its age brought up to
                           date, for every other worker to adopt

``nodes`` is ekmFleetDetails as ``[id, model, healthStatus]`` triples. JSON
rather than pickle: the link carries data, never code, whatever is at the
other end. The socket pair doubles as a lifeline: a worker reading EOF knows
its supervisor is gone and shuts down, so a killed supervisor leaves no
workers behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import trio

from sidecar.xks.responses import EkmNode

# Far above the largest message (ten nodes' health); a longer line is a bug.
MAX_LINE_BYTES = 64 * 1024

Message = dict[str, object]


class LinkError(Exception):
    """The other end sent something that is not a link message."""


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def ready_message(ports: dict[str, int]) -> Message:
    return {"kind": "ready", "ports": ports}


def health_message(backend: str, nodes: Sequence[EkmNode], age_s: float) -> Message:
    triples = [[node.id, node.model, node.health_status] for node in nodes]
    return {"kind": "health", "backend": backend, "nodes": triples, "age_s": age_s}


def health_nodes(message: Message) -> tuple[EkmNode, ...]:
    """The nodes of a "health" message; LinkError if they are malformed."""
    triples = message.get("nodes")
    if not isinstance(triples, list):
        raise LinkError("health message without nodes")
    try:
        return tuple(EkmNode(str(i), str(m), str(s)) for i, m, s in triples)
    except (TypeError, ValueError) as exc:
        raise LinkError(f"malformed health nodes: {exc}") from exc


class LineReader:
    """Messages from a stream, one JSON object per line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def receive(self) -> Message | None:
        """The next message, or None once the other end has closed."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise LinkError("link line too long")
            data = await self._stream.receive_some(MAX_LINE_BYTES)
            if not data:
                return None
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return _decode(line)


def _decode(line: bytes) -> Message:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise LinkError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        raise LinkError("a link message is an object with a kind")
    return message
