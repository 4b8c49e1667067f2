"""Test-side XKS client for the end-to-end conformance suite.

Everything here talks to the running sidecar the way KMS (or an operator)
would: HTTPS with a client certificate, SigV4 from **botocore** (the signer
KMS-compatible tools use), ``curl --aws-sigv4`` (spec, Appendix D),
``openssl s_client`` for what only the wire shows (alerts, versions,
suites), the log files, and the simulator's SSH console for key changes and
faults. Nothing reaches into a process: the suite must run unchanged against
every backend.

Requests go out as raw bytes we format ourselves, so a test can send exactly
the malformed or tampered request it is about; replies are parsed by
httptools. One ``XksClient`` keeps one keep-alive connection (as KMS does)
and reopens it only if the server closed it.

The console is the one backend-specific seam: tests that need it call
``needs_console(stack)`` first (see there).
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import httptools
import pytest
import trio
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.harness import KeystoreInfo, Stack

SERVICE = "kms-xks-proxy"
# An account the tenant-b policy allows (arn:aws:iam::111122223333:*).
PRINCIPAL = "arn:aws:iam::111122223333:user/conformance"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/0b8e0c5e-0000-4000-8000-c0ffee000001"
JSON = "application/json"

Headers = list[tuple[str, str]]
Json = dict[str, Any]


# --- request bodies (spec, "API operations") -------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def new_request_id() -> str:
    return str(uuid.uuid4())


def request_metadata(
    operation: str = "Encrypt",
    *,
    request_id: str | None = None,
    principal: str | None = PRINCIPAL,
    key_arn: str | None = KEY_ARN,
) -> Json:
    """A requestMetadata object; fields passed as None are left out."""
    fields = {
        "awsPrincipalArn": principal,
        "kmsKeyArn": key_arn,
        "kmsOperation": operation,
        "kmsRequestId": request_id or new_request_id(),
    }
    return {name: value for name, value in fields.items() if value is not None}


def health_body(request_id: str | None = None) -> Json:
    # GetHealthStatus carries only kmsRequestId and kmsOperation.
    metadata = request_metadata(
        "KmsHealthCheck", request_id=request_id, principal=None, key_arn=None
    )
    return {"requestMetadata": metadata}


def metadata_body(operation: str = "CreateKey", **fields: Any) -> Json:
    # kmsKeyArn is optional here (spec change log 0.0.12); CreateKey omits it.
    return {"requestMetadata": request_metadata(operation, key_arn=None, **fields)}


def encrypt_body(
    plaintext: bytes,
    *,
    aad: bytes | None = None,
    cdiv: bool = False,
    metadata: Json | None = None,
) -> Json:
    body: Json = {
        "requestMetadata": metadata or request_metadata("Encrypt"),
        "plaintext": b64(plaintext),
        "encryptionAlgorithm": "AES_GCM",
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = b64(aad)
    if cdiv:
        body["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
    return body


def decrypt_body(
    encrypted: Mapping[str, Any],
    *,
    aad: bytes | None = None,
    metadata: Json | None = None,
) -> Json:
    """A Decrypt body from an Encrypt response (fields copied as they came)."""
    body: Json = {
        "requestMetadata": metadata or request_metadata("Decrypt"),
        "encryptionAlgorithm": "AES_GCM",
    }
    for name in ("ciphertext", "ciphertextMetadata", "initializationVector"):
        if name in encrypted:
            body[name] = encrypted[name]
    body["authenticationTag"] = encrypted["authenticationTag"]
    if aad is not None:
        body["additionalAuthenticatedData"] = b64(aad)
    return body


def to_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


# --- replies ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased; last value wins
    body: bytes

    def json(self) -> Json:
        doc = json.loads(self.body)
        assert isinstance(doc, dict), self.body
        return doc

    @property
    def error_name(self) -> str | None:
        try:
            name = self.json().get("errorName")
        except ValueError:
            return None
        return name if isinstance(name, str) else None

    def __str__(self) -> str:  # what a failed assertion shows
        return f"HTTP {self.status} {self.body[:300]!r}"


class _ReplyParser:
    """httptools callbacks; collects complete responses in order."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.replies.append(Reply(status, self._headers, b"".join(self._body)))
        self._headers, self._body = {}, []


class ConnectionClosed(Exception):
    """The server closed the connection before a complete reply."""


# --- TLS connection -------------------------------------------------------------


@dataclass(frozen=True)
class TlsOptions:
    """How the client connects: its certificate, pinned version, TLS 1.2 suites.

    The stdlib cannot restrict TLS 1.3 suites; ``s_client`` covers those.
    """

    cert: Path | None
    key: Path | None
    version: ssl.TLSVersion | None = None
    ciphers: str | None = None


def kms_tls(stack: Stack, **changes: Any) -> TlsOptions:
    """KMS's client certificate (CN cks.kms.us-east-1.amazonaws.com)."""
    pki = stack.pki
    return replace(TlsOptions(pki.kms_client_chain, pki.kms_client_key), **changes)


def client_context(stack: Stack, options: TlsOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(stack.pki.public_root_cert))
    if options.cert is not None:
        context.load_cert_chain(str(options.cert), str(options.key))
    if options.version is not None:
        context.minimum_version = context.maximum_version = options.version
    if options.ciphers is not None:
        context.set_ciphers(options.ciphers)
    return context


class XksConnection:
    """One TLS connection carrying any number of requests (keep-alive)."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self._replies = _ReplyParser()

    @classmethod
    async def open(cls, stack: Stack, options: TlsOptions) -> XksConnection:
        tcp = await trio.open_tcp_stream(stack.host, stack.port)
        stream = trio.SSLStream(
            tcp, client_context(stack, options), server_hostname=stack.server_name
        )
        with trio.fail_after(5):
            await stream.do_handshake()
        return cls(stream)

    @property
    def tls_version(self) -> str | None:
        version = self.stream.version()
        return str(version) if version else None

    @property
    def cipher(self) -> str | None:
        described = self.stream.cipher()
        return described[0] if described else None

    async def exchange(self, raw: bytes) -> Reply:
        """Send one raw request and read its reply (at most 10 s)."""
        wanted = len(self._replies.replies) + 1
        await self.stream.send_all(raw)
        with trio.fail_after(10):
            while len(self._replies.replies) < wanted:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise ConnectionClosed(f"after {raw[:60]!r}")
                self._replies.parser.feed_data(data)
        return self._replies.replies[wanted - 1]

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def format_request(method: str, target: str, headers: Headers, body: bytes) -> bytes:
    """An HTTP/1.1 request as bytes; Content-Length is added here."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def plain_http_get(host: str, port: int, path: str) -> Reply:
    """One GET over plain HTTP (the load balancer's probe has no TLS)."""
    parser = _ReplyParser()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(request.encode("ascii"))
        with trio.fail_after(5):
            while not parser.replies and (data := await stream.receive_some(65536)):
                parser.parser.feed_data(data)
    assert parser.replies, f"no reply to GET {path} on port {port}"
    return parser.replies[0]


# --- SigV4 (spec, Appendix A) ---------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Signs as KMS does: botocore SigV4, headers ``host;x-amz-date`` only."""

    access_key_id: str
    secret: str = field(repr=False)
    region: str
    service: str = SERVICE

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        body: bytes,
        *,
        when: datetime | None = None,
    ) -> Headers:
        """Headers to send: host, x-amz-date and authorization.

        The request carries no other header while signing, so botocore signs
        exactly ``host;x-amz-date``; Content-Type goes on afterwards, unsigned,
        as KMS sends it.
        """
        request = AWSRequest(
            method=method,
            url=f"https://{host}{path}",
            data=body,
            headers={"host": host},
        )
        auth = SigV4Auth(
            Credentials(self.access_key_id, self.secret), self.service, self.region
        )
        if when is None:
            auth.add_auth(request)
        else:
            # botocore reads the clock in one place; fixing it there is the only
            # way to sign "from another time" with botocore's own code path.
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                auth.add_auth(request)
        return [
            ("Host", host),
            ("X-Amz-Date", request.headers["X-Amz-Date"]),
            ("Authorization", request.headers["Authorization"]),
        ]


def signer_for(keystore: KeystoreInfo, index: int = 0, **changes: Any) -> Signer:
    access_key_id, secret = keystore.credentials[index]
    return replace(Signer(access_key_id, secret, keystore.region), **changes)


HeaderEdit = Callable[[Headers], Headers]


@dataclass
class XksClient:
    """Signed XKS calls to one keystore over one kept-alive connection."""

    stack: Stack
    keystore: KeystoreInfo
    signer: Signer
    tls: TlsOptions
    connection: XksConnection | None = None
    # Every Authorization value sent, so the log test can look for them.
    authorizations: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"{self.stack.server_name}:{self.stack.port}"

    def path(self, operation: str, key_id: str | None = None) -> str:
        if key_id is None:
            return f"{self.keystore.uri_path}/{operation}"
        return f"{self.keystore.uri_path}/keys/{key_id}/{operation}"

    async def send(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        signer: Signer | None = None,
        unsigned: bool = False,
        sign_path: str | None = None,
        sign_body: bytes | None = None,
        when: datetime | None = None,
        edit: HeaderEdit | None = None,
    ) -> Reply:
        """Send one request; the ``sign_*``, ``when`` and ``edit`` knobs tamper."""
        headers: Headers = [("Host", self.host)]
        if not unsigned:
            headers = (signer or self.signer).sign(
                method,
                self.host,
                sign_path or path,
                body if sign_body is None else sign_body,
                when=when,
            )
            self.authorizations.append(headers[-1][1])
        headers.append(("Content-Type", JSON))
        return await self.send_raw(
            format_request(method, path, (edit or _same)(headers), body)
        )

    async def send_raw(self, raw: bytes) -> Reply:
        """Send bytes as they are; reconnects once if the server had closed."""
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = await XksConnection.open(self.stack, self.tls)
            try:
                return await self.connection.exchange(raw)
            except (ConnectionClosed, trio.BrokenResourceError):
                await self.aclose()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def post(self, path: str, doc: Mapping[str, Any], **knobs: Any) -> Reply:
        return await self.send("POST", path, to_json(doc), **knobs)

    async def health(self, doc: Json | None = None) -> Reply:
        return await self.post(self.path("health"), doc or health_body())

    async def metadata(self, key_id: str, doc: Json | None = None) -> Reply:
        return await self.post(self.path("metadata", key_id), doc or metadata_body())

    async def encrypt(self, key_id: str, plaintext: bytes, **options: Any) -> Reply:
        doc = encrypt_body(plaintext, **options)
        return await self.post(self.path("encrypt", key_id), doc)

    async def decrypt(self, key_id: str, encrypted: Json, **options: Any) -> Reply:
        doc = decrypt_body(encrypted, **options)
        return await self.post(self.path("decrypt", key_id), doc)

    async def aclose(self) -> None:
        if self.connection is not None:
            await self.connection.aclose()
            self.connection = None


def _same(headers: Headers) -> Headers:
    return headers


@asynccontextmanager
async def open_client(
    stack: Stack,
    keystore: str = "dev",
    *,
    credential: int = 0,
    tls: TlsOptions | None = None,
) -> AsyncIterator[XksClient]:
    info = stack.keystores[keystore]
    client = XksClient(stack, info, signer_for(info, credential), tls or kms_tls(stack))
    try:
        yield client
    finally:
        await client.aclose()


def expect_ok(reply: Reply) -> Json:
    assert reply.status == 200, str(reply)
    return reply.json()


def expect_error(reply: Reply, status: int, error_name: str) -> None:
    assert (reply.status, reply.error_name) == (status, error_name), str(reply)


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


# --- the simulator's console: the one backend-specific seam -------------------


class Console:
    """Key management and fault injection through the simulator's SSH console."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    async def run(self, command: str) -> str:
        status, out, err = await self._stack.console(command)
        assert status == 0, f"console {command!r}: {status} {err}"
        return out

    async def create_key(self, usages: str = "encrypt,decrypt") -> str:
        """A fresh key only this test uses; returns its external key id."""
        label = f"e2e-{uuid.uuid4().hex[:12]}"
        await self.run(f"keys create {label} --usages {usages}")
        return label

    async def destroy_key(self, key_id: str) -> None:
        await self.run(f"keys destroy {key_id} --yes")

    async def disable_key(self, key_id: str) -> None:
        await self.run(f"keys disable {key_id}")

    async def enable_key(self, key_id: str) -> None:
        await self.run(f"keys enable {key_id}")

    async def rotate_key(self, key_id: str) -> None:
        """A new key version becomes current; older ones still decrypt."""
        await self.run(f"keys rotate {key_id}")

    async def set_usages(self, key_id: str, usages: str) -> None:
        """``usages``: comma-separated encrypt, decrypt, wrap, unwrap, or none."""
        await self.run(f"keys usages {key_id} {usages}")

    async def latency(self, milliseconds: int) -> None:
        await self.run(f"faults latency {milliseconds}")

    async def outage(self, on: bool) -> None:
        await self.run(f"faults outage {'on' if on else 'off'}")

    async def clear_faults(self) -> None:
        await self.run("faults clear")


def needs_console(stack: Stack) -> Console:
    """Tests calling this need an admin console for keys and faults.

    Only the CryptoHub simulator has one. A backend run without it (PKCS#11 on
    SoftHSM) must supply its own equivalent here; until then such a run fails
    these tests loudly rather than skipping them.
    """
    if stack.backend != "cryptohub":
        pytest.fail(
            f"no admin console for backend {stack.backend!r}: add one to needs_console"
        )
    return Console(stack)


# --- logs and polling ------------------------------------------------------------


async def log_records(path: Path) -> list[Json]:
    """Every JSON object line of a log file (other lines are skipped)."""
    records = []
    for line in (await trio.Path(path).read_text(errors="replace")).splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            records.append(doc)
    return records


async def request_log_records(stack: Stack, kms_request_id: str) -> list[Json]:
    """The sidecar's log lines naming ``kms_request_id``.

    Waits up to 3 s for the first, then briefly more, so that a duplicate
    line written just after it is counted too.
    """
    found = await eventually(lambda: _records_naming(stack, kms_request_id), 3, 0.05)
    assert found, f"no log line with kmsRequestId {kms_request_id!r} within 3 s"
    await trio.sleep(0.2)
    return await _records_naming(stack, kms_request_id)


async def _records_naming(stack: Stack, kms_request_id: str) -> list[Json]:
    records = await log_records(stack.sidecar_log)
    return [r for r in records if r.get("kmsRequestId") == kms_request_id]


async def eventually(
    probe: Callable[[], Awaitable[Any]], within: float, interval: float = 0.1
) -> Any:
    """Await ``probe()`` until it returns something truthy, for ``within`` s."""
    deadline = trio.current_time() + within
    while True:
        result = await probe()
        if result or trio.current_time() > deadline:
            return result
        await trio.sleep(interval)
