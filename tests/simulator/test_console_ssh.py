"""The admin console end to end: real SSH clients against ``serve_console``.

Each test starts the console on port 0 with the development PKI's host key and
authorized admin key, then talks to it with asyncssh (on a trio-asyncio loop of
its own) or with the OpenSSH ``ssh`` client, exactly as an operator would.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest
import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from fixtures.pki import Pki
from simulator.console import (
    ConsoleContext,
    ConsoleSettings,
    ConsoleSetupError,
    serve_console,
)
from simulator.crypto import HsmCrypto
from simulator.errors import KeyNotFound
from simulator.faults import Faults
from simulator.hostproto.codec import ErrorCode
from simulator.keystore import KeyState, KeyStore
from simulator.seed import seed
from simulator.stats import Stats

MASTER_KEY = bytes(range(32))
PROMPT = "node-1> "
TIMEOUT_S = 10  # generous; each exchange takes milliseconds on loopback

Process = asyncssh.SSHClientProcess[str]


@pytest.fixture
def settings(pki: Pki) -> ConsoleSettings:
    return ConsoleSettings(
        listen="127.0.0.1",
        port=0,
        host_key=pki.ssh_host_key,
        authorized_keys=pki.ssh_admin_pubkey,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as opened:
        seed(opened)
        yield opened


@pytest.fixture
def ctx(store: KeyStore) -> ConsoleContext:
    return ConsoleContext(
        store=store,
        crypto=HsmCrypto(store),
        faults=Faults(),
        stats=Stats(),
        node_id="node-1",
        model="CryptoHub",
        version="7.0-sim",
    )


@pytest.fixture
async def port(
    nursery: trio.Nursery, settings: ConsoleSettings, ctx: ConsoleContext
) -> int:
    bound: int = await nursery.start(serve_console, settings, ctx)
    return bound


def client_options(
    pki: Pki,
    *,
    username: str = "admin",
    client_key: asyncssh.SSHKey | Path | None = None,
    password: str | None = None,
) -> dict[str, object]:
    """asyncssh client options that trust only the PKI's host key and ignore
    the user's own SSH configuration, keys and agent."""
    host_key = asyncssh.read_private_key(pki.ssh_host_key).convert_to_public()
    return {
        "username": username,
        "client_keys": None if password else [client_key or pki.ssh_admin_key],
        "password": password,
        "known_hosts": ([host_key], [], []),
        "config": None,
        "agent_path": None,
    }


@asynccontextmanager
async def connected(port: int, pki: Pki) -> AsyncIterator[asyncssh.SSHClientConnection]:
    async with trio_asyncio.open_loop():
        connect = aio_as_trio(asyncssh.connect)
        conn = await connect("127.0.0.1", port, **client_options(pki))
        try:
            yield conn
        finally:
            conn.close()
            await aio_as_trio(conn.wait_closed)()


async def login_refused(
    port: int,
    pki: Pki,
    *,
    username: str = "admin",
    client_key: asyncssh.SSHKey | None = None,
    password: str | None = None,
) -> bool:
    """Whether the console denies this login (True) or lets it in (False)."""
    options = client_options(
        pki, username=username, client_key=client_key, password=password
    )
    async with trio_asyncio.open_loop():
        connect = aio_as_trio(asyncssh.connect)
        try:
            conn = await connect("127.0.0.1", port, **options)
        except asyncssh.PermissionDenied:
            return True
        conn.close()
        await aio_as_trio(conn.wait_closed)()
    return False


async def run(
    conn: asyncssh.SSHClientConnection, command: str
) -> asyncssh.SSHCompletedProcess:
    result: asyncssh.SSHCompletedProcess = await aio_as_trio(conn.run)(command)
    return result


async def read_until(process: Process, text: str) -> str:
    with trio.fail_after(TIMEOUT_S):
        seen: str = await aio_as_trio(process.stdout.readuntil)(text)
    return seen


async def type_line(process: Process, line: str) -> str:
    """Type a line as a terminal does (Enter sends CR); return what follows,
    up to the next prompt."""
    process.stdin.write(f"{line}\r")
    return await read_until(process, PROMPT)


# -- one-shot commands (exec requests) -----------------------------------------------


async def test_exec_keys_list_prints_the_keys_and_exits_zero(
    port: int, pki: Pki
) -> None:
    async with connected(port, pki) as conn:
        result = await run(conn, "keys list")

    assert result.exit_status == 0
    assert result.stderr == ""
    labels = [line.split()[0] for line in str(result.stdout).splitlines()[1:]]
    assert labels == sorted(
        [
            "foo",
            "encrypt_only_key",
            "decrypt_only_key",
            "impotent_key",
            "xks-health-check",
        ]
    )


async def test_exec_key_lifecycle_changes_the_live_store(
    port: int, pki: Pki, store: KeyStore
) -> None:
    async with connected(port, pki) as conn:
        created = await run(conn, "keys create ops-key --usages wrap,unwrap")
        rotated = await run(conn, "keys rotate ops-key")
        disabled = await run(conn, "keys disable ops-key")
        assert store.get("ops-key").state is KeyState.DISABLED
        enabled = await run(conn, "keys enable ops-key")
        usages = await run(conn, "keys usages ops-key encrypt")
        shown = await run(conn, "keys show ops-key")
        destroyed = await run(conn, "keys destroy ops-key --yes")

    for result in (created, rotated, disabled, enabled, usages, shown, destroyed):
        assert result.exit_status == 0, result.stderr
    assert "versions         1,2" in str(shown.stdout)
    assert "usages           ENCRYPT\n" in str(shown.stdout)
    assert str(destroyed.stdout).startswith("destroyed key ops-key")
    with pytest.raises(KeyNotFound):
        store.get("ops-key")


async def test_exec_errors_go_to_stderr_with_a_non_zero_status(
    port: int, pki: Pki
) -> None:
    async with connected(port, pki) as conn:
        missing = await run(conn, "keys show nope")
        unknown = await run(conn, "frobnicate")

    assert (missing.exit_status, missing.stdout) == (1, "")
    assert missing.stderr == "error: no key 'nope'\n"
    assert unknown.exit_status == 2
    assert str(unknown.stderr).startswith("error: unknown command 'frobnicate'")


async def test_exec_destroy_without_yes_is_refused_and_keeps_the_key(
    port: int, pki: Pki, store: KeyStore
) -> None:
    async with connected(port, pki) as conn:
        result = await run(conn, "keys destroy foo")

    assert result.exit_status == 2
    assert "--yes" in str(result.stderr)
    assert store.get("foo").label == "foo"


async def test_exec_faults_commands_change_the_servers_faults(
    port: int, pki: Pki, ctx: ConsoleContext
) -> None:
    async with connected(port, pki) as conn:
        await run(conn, "faults latency 120")
        await run(conn, "faults error-rate 0.5")
        await run(conn, "faults outage on")
        assert ctx.faults == Faults(latency_ms=120, error_rate=0.5, outage=True)
        shown = await run(conn, "faults show")
        cleared = await run(conn, "faults clear")

    assert "latency ms          120" in str(shown.stdout)
    assert cleared.exit_status == 0
    assert ctx.faults == Faults()


async def test_exec_stats_node_and_help(
    port: int, pki: Pki, ctx: ConsoleContext
) -> None:
    ctx.stats.record("ECHO", ErrorCode.OK, 0.001)

    async with connected(port, pki) as conn:
        stats = await run(conn, "stats")
        node = await run(conn, "node")
        help_text = await run(conn, "help")

    echo_rows = [row for row in str(stats.stdout).splitlines() if "ECHO" in row]
    assert [row.split()[:3] for row in echo_rows] == [["ECHO", "1", "0"]]
    assert "node id  node-1" in str(node.stdout)
    assert "keys destroy <id> [--yes]" in str(help_text.stdout)
    assert {stats.exit_status, node.exit_status, help_text.exit_status} == {0}


async def test_each_command_is_logged_with_user_and_outcome(
    port: int, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="simulator.console")

    async with connected(port, pki) as conn:
        await run(conn, "keys show nope")

    lines = [r.getMessage() for r in caplog.records if r.name == "simulator.console"]
    assert (
        "console command user=admin command='keys show nope' status=1 "
        "outcome=\"error: no key 'nope'\"" in lines
    )


async def test_a_crashing_command_reports_one_line_and_logs_the_traceback(
    port: int,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def crash(line: str, ctx: ConsoleContext, *, interactive: bool) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("simulator.console.session.run_command", crash)

    async with connected(port, pki) as conn:
        result = await run(conn, "keys list")

    assert result.exit_status == 1
    assert result.stderr == "error: internal error; see the simulator log\n"
    assert any(r.exc_info for r in caplog.records if r.name == "simulator.console")


# -- interactive shell ---------------------------------------------------------------


async def test_interactive_destroy_asks_for_the_key_id(
    port: int, pki: Pki, store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="simulator.console")
    async with connected(port, pki) as conn:
        shell: Process = await aio_as_trio(conn.create_process)(
            term_type="xterm", term_size=(120, 40)
        )
        banner = await read_until(shell, PROMPT)
        created = await type_line(shell, "keys create temp-key")
        shell.stdin.write("keys destroy temp-key\r")
        await read_until(shell, "Type the key id 'temp-key' to confirm: ")
        declined = await type_line(shell, "temp")
        kept = store.get("temp-key")
        shell.stdin.write("keys destroy temp-key\r")
        await read_until(shell, "to confirm: ")
        confirmed = await type_line(shell, "temp-key")
        shell.stdin.write("exit\r")
        with trio.fail_after(TIMEOUT_S):
            ended = await aio_as_trio(shell.wait)()

    assert "CryptoHub 7.0-sim, node node-1: admin console" in banner
    assert "created key temp-key\r\n" in created  # the line editor's CRLF
    assert "error: not confirmed; nothing was changed" in declined
    assert kept.label == "temp-key"
    assert "destroyed key temp-key" in confirmed
    with pytest.raises(KeyNotFound):
        store.get("temp-key")
    assert ended.exit_status == 0
    messages = [r.getMessage() for r in caplog.records]
    logged = [m for m in messages if m.startswith("console confirmation")]
    assert logged == [
        "console confirmation user=admin command='keys destroy temp-key' status=1 "
        "outcome='error: not confirmed; nothing was changed'",
        "console confirmation user=admin command='keys destroy temp-key' status=0 "
        "outcome='ok'",
    ]


async def test_interactive_ctrl_c_discards_the_line_being_typed(
    port: int, pki: Pki
) -> None:
    async with connected(port, pki) as conn:
        shell: Process = await aio_as_trio(conn.create_process)(term_type="xterm")
        await read_until(shell, PROMPT)
        shell.stdin.write("keys destroy foo")
        shell.stdin.write("\x03")
        await read_until(shell, PROMPT)
        after = await type_line(shell, "node")

    assert "node id  node-1" in after
    assert "error" not in after


async def test_a_shell_without_a_terminal_reads_commands_from_stdin(
    port: int, pki: Pki
) -> None:
    async with connected(port, pki) as conn:
        result: asyncssh.SSHCompletedProcess = await aio_as_trio(conn.run)(
            input="node\nkeys show nope\nexit\n"
        )

    assert result.exit_status == 0
    assert "node id  node-1" in str(result.stdout)
    assert "error: no key 'nope'" in str(result.stdout)


async def test_stopping_the_console_closes_open_sessions(
    settings: ConsoleSettings, ctx: ConsoleContext, pki: Pki
) -> None:
    async with trio.open_nursery() as servers:
        port: int = await servers.start(serve_console, settings, ctx)
        async with connected(port, pki) as conn:
            shell: Process = await aio_as_trio(conn.create_process)(term_type="xterm")
            await read_until(shell, PROMPT)
            servers.cancel_scope.cancel()
            with trio.fail_after(TIMEOUT_S), trio.CancelScope(shield=True):
                rest = await aio_as_trio(shell.stdout.read)()
                await aio_as_trio(conn.wait_closed)()

    assert rest == ""


# -- authentication --------------------------------------------------------------------


async def test_the_admin_key_logs_in(port: int, pki: Pki) -> None:
    assert not await login_refused(port, pki)


async def test_a_key_not_in_authorized_keys_is_refused(port: int, pki: Pki) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")

    assert await login_refused(port, pki, client_key=stranger)


async def test_password_auth_is_refused(port: int, pki: Pki) -> None:
    assert await login_refused(port, pki, password="hunter2")


async def test_the_admin_key_is_refused_for_any_other_user(port: int, pki: Pki) -> None:
    assert await login_refused(port, pki, username="root")


OPENSSH_OPTIONS = (
    "-F",
    "/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
async def test_the_documented_openssh_command_works(port: int, pki: Pki) -> None:
    result = await trio.run_process(
        [
            "ssh",
            *OPENSSH_OPTIONS,
            "-i",
            str(pki.ssh_admin_key),
            "-p",
            str(port),
            "admin@127.0.0.1",
            "keys",
            "list",
        ],
        capture_stdout=True,
        capture_stderr=True,
    )

    assert b"xks-health-check" in result.stdout


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
async def test_openssh_is_offered_public_key_auth_only(port: int, pki: Pki) -> None:
    result = await trio.run_process(
        [
            "ssh",
            *OPENSSH_OPTIONS,
            "-v",
            "-o",
            "PubkeyAuthentication=no",
            "-p",
            str(port),
            "admin@127.0.0.1",
            "node",
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )

    assert result.returncode == 255
    assert b"Authentications that can continue: publickey\n" in result.stderr.replace(
        b"\r", b""
    )


async def test_an_unreadable_host_key_stops_the_start(
    settings: ConsoleSettings, ctx: ConsoleContext, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-key"
    broken = ConsoleSettings(settings.listen, 0, missing, settings.authorized_keys)

    with pytest.raises(ConsoleSetupError, match="no-such-key"):
        await serve_console(broken, ctx)


async def test_a_malformed_authorized_keys_file_stops_the_start(
    settings: ConsoleSettings, ctx: ConsoleContext, tmp_path: Path
) -> None:
    garbage = tmp_path / "authorized_keys"
    garbage.write_text("ssh-ed25519 not-base64!!\n")
    broken = ConsoleSettings(settings.listen, 0, settings.host_key, garbage)

    with pytest.raises(ConsoleSetupError, match="authorized keys"):
        await serve_console(broken, ctx)
