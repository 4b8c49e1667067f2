"""Drive ``openssl s_client`` against a listener and read what it saw.

``-msg`` makes s_client print every TLS message and alert in both directions;
lines starting ``<<<`` came from the server. A test that expects the server
to refuse checks the alert the *server* sent, so it cannot pass merely
because the client declined to offer something.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

import pytest
import trio

_RECEIVED_ALERT = re.compile(
    r"^<<< TLS [\d.]+, Alert \[length 0002\], fatal (\w+)", re.M
)
_CIPHER = re.compile(r"^(?:New|Reused), [\w.]+, Cipher is (\S+)", re.M)
_PROTOCOL = re.compile(r"^\s*Protocol\s*:\s*(\S+)", re.M)
_REQUEST = b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class SClientResult:
    output: str

    @property
    def alert_received(self) -> str | None:
        """The first fatal alert the server sent, by OpenSSL's name."""
        match = _RECEIVED_ALERT.search(self.output)
        return match.group(1) if match else None

    @property
    def cipher(self) -> str | None:
        match = _CIPHER.search(self.output)
        return match.group(1) if match else None

    @property
    def protocol(self) -> str | None:
        match = _PROTOCOL.search(self.output)
        return match.group(1) if match else None

    @property
    def http_status_line(self) -> str | None:
        match = re.search(r"^HTTP/1\.1 (\d{3})", self.output, re.M)
        return match.group(0) if match else None


def require_openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl command-line tool not installed")
    return path


async def s_client(port: int, *args: str) -> SClientResult:
    """Connect, send one HTTP request, and wait for the server to close."""
    command = [
        require_openssl(), "s_client", "-connect", f"127.0.0.1:{port}",
        "-servername", "localhost", "-msg", "-ign_eof", *args,
    ]  # fmt: skip
    with trio.fail_after(20):
        done = await trio.run_process(
            command, stdin=_REQUEST, capture_stdout=True, capture_stderr=True,
            check=False,
        )  # fmt: skip
    return SClientResult(done.stdout.decode() + done.stderr.decode())
