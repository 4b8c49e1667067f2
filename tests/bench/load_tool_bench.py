"""CPU per request of the load tool alone, against a server that costs it nothing.

The load tool (``python -m sidecar.bench``) shares the machine's two cores
with the stack it measures, so its own CPU per request is taken from the
sidecar. This script measures it in isolation:

* a minimal XKS-shaped HTTPS server runs in a *separate process* (asyncio,
  real TLS 1.3 with mTLS, keep-alive), so its CPU is not counted. It answers
  Encrypt, Decrypt, GetKeyMetadata and GetHealthStatus with bodies that pass
  the tool's checks (CDIV included), so the tool's success path is measured.
  It does no cryptography and no signature check, and caches each answer by
  request body: after the warm-up it only parses HTTP and writes;
* the load tool runs as a subprocess, and its CPU time (user + kernel) is
  read from ``/proc/<pid>/stat`` at its first and last progress lines, as
  tests/bench/stack_bench.py does: connection set-up and the warm-up are
  left out; the requests of the window are the answers those lines count.

``--compare DIR`` alternates runs of the tree's package with runs of a copy
of the ``sidecar`` package kept in ``DIR/sidecar`` (made before a change),
since other work on the machine moves single figures by 10-25 %::

    .venv/bin/python -m tests.bench.load_tool_bench --rounds 3 \
        --compare /tmp/bench_orig
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

from fixtures.pki import Pki, load, mint
from tests.bench.proc_cpu import CpuTimes, own_cpu

_ROOT = Path(__file__).resolve().parents[2]
_URI_PATH = "/bench/kms/xks/v1"
_SECRET = "load-tool-bench-secret-" + "x" * 20
_METADATA = b"\x01\x00\x00\x00\x01"
# "[    3 s] sent 1800/s  answered 1799/s  ..." (sidecar/bench/progress.py).
_PROGRESS = re.compile(r"^\[\s*(\d+) s\] sent (\d+)/s\s+answered (\d+)/s")


# --- the server (its own process) -------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _answer(operation: str, body: bytes) -> bytes:
    """A JSON answer the tool's checks accept (tests/bench_tool/fake_proxy)."""
    doc = json.loads(body) if body else {}
    if operation == "encrypt":
        aad = base64.b64decode(doc.get("additionalAuthenticatedData", ""))
        ciphertext = base64.b64decode(doc["plaintext"])[::-1]
        iv, tag = b"\x07" * 12, hashlib.sha256(ciphertext).digest()[:16]
        reply = {
            "ciphertext": _b64(ciphertext),
            "ciphertextMetadata": _b64(_METADATA),
            "initializationVector": _b64(iv),
            "authenticationTag": _b64(tag),
        }
        if "ciphertextDataIntegrityValueAlgorithm" in doc:
            hashed = aad + _METADATA + iv + ciphertext + tag
            reply["ciphertextDataIntegrityValue"] = _b64(
                hashlib.sha256(hashed).digest()
            )
        return json.dumps(reply).encode()
    if operation == "decrypt":
        plaintext = base64.b64decode(doc["ciphertext"])[::-1]
        return json.dumps({"plaintext": _b64(plaintext)}).encode()
    if operation == "metadata":
        keys = ("keySpec", "keyUsage", "keyStatus")
        return json.dumps(dict.fromkeys(keys, "x")).encode()
    return b'{"xksProxyFleetSize":1,"xksProxyVendor":"bench","ekmFleetDetails":[]}'


class _Http(asyncio.Protocol):
    """Keep-alive HTTP/1.1: one request at a time, answered at once."""

    cache: ClassVar[dict[bytes, bytes]] = {}  # shared by every connection

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]  # the tool always sends it
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self._response(head, body))

    def _response(self, head: bytes, body: bytes) -> bytes:
        response = self.cache.get(body)
        if response is None:
            operation = head.split(b" ", 2)[1].rsplit(b"/", 1)[-1].decode()
            reply = _answer(operation, body)
            response = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply)
            )
            self.cache[body] = response
        return response


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.sidecar_server_chain), str(pki.sidecar_server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(str(pki.aws_ca_bundle))
    return context


async def _serve(pki_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        _Http, "127.0.0.1", 0, ssl=_server_context(load(pki_dir)), backlog=512
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# --- the load tool (a subprocess) and its CPU -------------------------------


@dataclass
class Measured:
    label: str
    cpu: CpuTimes
    answered: int
    status: str

    @property
    def us_per_request(self) -> float:
        return self.cpu.total_s / self.answered * 1e6 if self.answered else 0.0


def _start_server(pki_dir: Path) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.load_tool_bench", "--serve", str(pki_dir)],
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def _tool_argv(args: argparse.Namespace, pki: Pki, port: int, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "sidecar.bench"]
    if args.profile is not None:  # the tree's variant only; CPU figures triple
        argv[2:3] = ["tests.bench.cpu_profile", str(args.profile), "sidecar.bench"]
    argv += ["--endpoint", f"https://127.0.0.1:{port}", "--server-name", "localhost"]
    argv += ["--uri-path", _URI_PATH, "--key-id", "foo"]
    argv += ["--access-key-id", "AKIALOADTOOLBENCH"]
    argv += ["--ca-file", str(pki.public_root_cert)]
    argv += ["--client-cert", str(pki.kms_client_chain)]
    argv += ["--client-key", str(pki.kms_client_key)]
    argv += ["--rate", f"{args.rate:g}", "--target-rate", f"{args.rate:g}"]
    argv += ["--duration", f"{args.duration:g}"]
    argv += ["--connections", str(args.connections), "--json", str(out)]
    return argv


def _follow(stderr: IO[str], pid: int) -> tuple[CpuTimes, int]:
    """CPU between the first and last progress lines, and the answers since."""
    first: CpuTimes | None = None
    last, answered = CpuTimes(), 0
    for line in stderr:
        match = _PROGRESS.match(line)
        if match is None:
            continue
        last = own_cpu(pid)
        if first is None:
            first = last
        else:
            answered += int(match.group(3))
    return last - (first or last), answered


def run_tool(
    args: argparse.Namespace, pki: Pki, port: int, label: str, root: Path
) -> Measured:
    """Run the tool with the ``sidecar`` package found in ``root``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        # ``python -m`` puts the working directory first on sys.path.
        env = dict(os.environ, PYTHONPATH=str(root))
        env["XKS_BENCH_SECRET_ACCESS_KEY"] = _SECRET
        tool = subprocess.Popen(
            _tool_argv(args, pki, port, out),
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tool.stderr is not None
        cpu, answered = _follow(tool.stderr, tool.pid)
        tool.wait()
        status = json.loads(out.read_text())["status"] if out.exists() else "none"
    return Measured(label, cpu, answered, status)


def _variants(args: argparse.Namespace) -> list[tuple[str, Path]]:
    variants = [("tree", _ROOT)]
    if args.compare is not None:
        variants.insert(0, ("compare", args.compare.resolve()))
    return variants


def _summary(results: list[Measured]) -> str:
    lines = []
    for label in dict.fromkeys(r.label for r in results):
        figures = sorted(r.us_per_request for r in results if r.label == label)
        shown = ", ".join(f"{f:.0f}" for f in figures)
        lines.append(
            f"{label}: min {figures[0]:.0f} us/request, "
            f"spread {figures[-1] - figures[0]:.0f} ({shown})"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="a copy holding sidecar/")
    parser.add_argument("--profile", type=Path, help="cProfile (CPU clock) here")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pki = mint(Path(tmp) / "pki")
        server, port = _start_server(Path(tmp) / "pki")
        try:
            results = _rounds(args, pki, port)
        finally:
            server.kill()
            server.wait()
    print(_summary(results))
    return 0


def _rounds(args: argparse.Namespace, pki: Pki, port: int) -> list[Measured]:
    results = []
    for _ in range(args.rounds):
        for label, root in _variants(args):
            result = run_tool(args, pki, port, label, root)
            user = result.cpu.user_s / max(result.answered, 1) * 1e6
            print(
                f"{label}: {result.us_per_request:.0f} us/request, {user:.0f} user "
                f"({result.answered} answers, {result.status})",
                flush=True,
            )
            results.append(result)
    return results


if __name__ == "__main__":
    sys.exit(main())
