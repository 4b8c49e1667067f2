"""The command-line tools the suite drives: curl and openssl s_client.

``curl --aws-sigv4`` is the second, independent SigV4 signer (spec,
Appendix D); ``openssl s_client`` shows what only the wire shows (alerts,
versions, suites). A missing tool fails the test that needs it rather than
skipping it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.e2e.bodies import to_json
from tests.e2e.http_wire import JSON, Reply
from tests.e2e.signing import SERVICE
from tests.e2e.stack import Stack
from tests.e2e.xks_client import XksClient

# --- curl --aws-sigv4 (spec, Appendix D) ---------------------------------------


async def curl_post(
    client: XksClient, path: str, doc: Mapping[str, Any], workdir: Path
) -> Reply:
    """POST with curl's own SigV4 signer, KMS's client certificate and mTLS.

    The credential goes in through a config file on stdin, not the command
    line, so it never shows in a process listing.
    """
    curl = _require_tool("curl")
    body_file, out_file = (
        trio.Path(workdir / "curl-body"),
        trio.Path(workdir / "curl-out"),
    )
    await body_file.write_bytes(to_json(doc))
    signer, pki = client.signer, client.stack.pki
    config = f'user = "{signer.access_key_id}:{signer.secret}"\n'.encode()
    command = [
        curl, "-sS", "--http1.1", "-K", "-",
        "--aws-sigv4", f"aws:amz:{signer.region}:{SERVICE}",
        "--cacert", str(pki.public_root_cert),
        "--cert", str(pki.kms_client_chain), "--key", str(pki.kms_client_key),
        "--resolve", f"{client.host}:{client.stack.host}",
        "-H", f"Content-Type: {JSON}", "--data-binary", f"@{body_file}",
        "-o", str(out_file), "-w", "%{http_code}",
        f"https://{client.host}{path}",
    ]  # fmt: skip
    with trio.fail_after(20):
        done = await trio.run_process(
            command, stdin=config, capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 0, done.stderr.decode()
    return Reply(int(done.stdout), {}, await out_file.read_bytes())


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; the conformance suite needs it")
    return path


# --- openssl s_client ------------------------------------------------------------


@dataclass(frozen=True)
class SClient:
    """What ``openssl s_client -msg`` printed.

    With ``-msg``, every record is listed with its direction: ``<<<`` lines
    came from the server. Alerts are parsed from those lines only, so an
    assertion on them fails if the *client* gave up instead of the server.
    """

    output: str

    def alerts_received(self) -> list[tuple[str, str, bytes]]:
        """(level, description, record body) of each alert the server sent.

        ``-msg`` prints the alert's two bytes (level, description) on the
        line after its summary; both must agree for a test to rely on them.
        """
        lines = self.output.splitlines()
        found = []
        for line, body in zip(lines, [*lines[1:], ""], strict=True):
            if line.startswith("<<< ") and _ALERT in line:
                level, _, name = line.split(_ALERT)[1].partition(" ")
                found.append((level, name, _hex_bytes(body)))
        return found

    def fatal_alert(self) -> str | None:
        """The description of the first fatal alert from the server."""
        fatal = [name for level, name, _ in self.alerts_received() if level == "fatal"]
        return fatal[0] if fatal else None

    def fatal_alert_code(self) -> int | None:
        """The description byte of that alert, as sent on the wire."""
        for level, _, body in self.alerts_received():
            if level == "fatal" and len(body) == 2 and body[0] == 2:
                return body[1]
        return None

    @property
    def cipher(self) -> str | None:
        for line in self.output.splitlines():
            if line.startswith(("New, ", "Reused, ")) and ", Cipher is " in line:
                return line.rsplit(" ", 1)[1]
        return None

    @property
    def protocol(self) -> str | None:
        for line in self.output.splitlines():
            name, _, value = line.strip().partition(":")
            if name.strip() == "Protocol" and value.strip():
                return value.strip()
        return None

    @property
    def http_status(self) -> int | None:
        for line in self.output.splitlines():
            if line.startswith("HTTP/1.1 "):
                return int(line.split()[1])
        return None


_ALERT = ", Alert [length 0002], "


def _hex_bytes(line: str) -> bytes:
    try:
        return bytes.fromhex(line.strip())
    except ValueError:
        return b""


async def s_client(
    stack: Stack,
    *args: str,
    cert: Path | None = None,
    key: Path | None = None,
) -> SClient:
    """Handshake, send a GET to the dev health URI (405 if served), read to EOF."""
    command = [
        _require_tool("openssl"), "s_client", "-connect", f"{stack.host}:{stack.port}",
        "-servername", stack.server_name, "-msg", "-ign_eof",
        "-CAfile", str(stack.pki.public_root_cert), *args,
    ]  # fmt: skip
    if cert is not None:
        command += ["-cert", str(cert), "-key", str(key)]
    path = f"{stack.keystores['dev'].uri_path}/health"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {stack.server_name}\r\nConnection: close\r\n\r\n"
    )
    with trio.fail_after(20):
        done = await trio.run_process(
            command,
            stdin=request.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return SClient(done.stdout.decode("latin-1") + done.stderr.decode("latin-1"))
