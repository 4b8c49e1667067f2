"""One SSH session of the admin console: an interactive shell or one command.

``ssh admin@host`` gets a shell: a banner, a prompt and asyncssh's line editor
(when the client asks for a terminal), so arrow keys, history, Ctrl-A/E/U work;
Ctrl-C drops the line being typed, Ctrl-D on an empty line or ``exit`` ends it.
``ssh admin@host keys list`` runs that one command, writes its output to
stdout (errors to stderr) and exits with its status.

Every command is logged on ``simulator.console`` with the user, the command
line and the outcome. Command lines carry key ids and fault values, never key
material, so they are safe to log.
"""

from __future__ import annotations

import logging

import asyncssh

from simulator.console.commands import answer_confirmation, run_command
from simulator.console.context import ConsoleContext
from simulator.console.result import EXIT_FAILED, EXIT_OK, CommandResult

log = logging.getLogger("simulator.console")

Process = asyncssh.SSHServerProcess[str]


async def run_session(process: Process, ctx: ConsoleContext) -> None:
    """Serve one session channel until the command or the shell ends."""
    user = str(process.get_extra_info("username"))
    try:
        if process.subsystem is not None:
            process.stderr.write(f"subsystem {process.subsystem!r} is not offered\n")
            status = EXIT_FAILED
        elif process.command is not None:
            status = _run_exec(process, ctx, user)
        else:
            status = await _run_shell(process, ctx, user)
        process.exit(status)
    except (asyncssh.Error, OSError) as exc:
        # The client went away (or the console is shutting down) mid-session;
        # there is no one left to tell.
        log.info(
            "console session ended early user=%s reason=%s", user, type(exc).__name__
        )


def _run_exec(process: Process, ctx: ConsoleContext, user: str) -> int:
    result = _execute(process.command or "", ctx, user, interactive=False)
    stream = process.stdout if result.ok else process.stderr
    _write(stream, result.output)
    return result.status


async def _run_shell(process: Process, ctx: ConsoleContext, user: str) -> int:
    _write(process.stdout, _banner(ctx))
    while True:
        process.stdout.write(f"{ctx.node_id}> ")
        line = await _read_line(process)
        if not line:  # EOF or Ctrl-D
            process.stdout.write("\n")
            return EXIT_OK

        result = _execute(line.strip(), ctx, user, interactive=True)
        if result.confirmation is not None:
            result = await _confirm(process, result, user, line.strip())
        _write(process.stdout, result.output)
        if result.end_session:
            return EXIT_OK


async def _confirm(
    process: Process, pending: CommandResult, user: str, line: str
) -> CommandResult:
    assert pending.confirmation is not None
    _write(process.stdout, pending.output)
    process.stdout.write(pending.confirmation.prompt)
    answer = await _read_line(process)

    result = answer_confirmation(pending.confirmation, answer)
    _log_outcome(user, line, result, event="console confirmation")
    return result


async def _read_line(process: Process) -> str:
    """The next line; ``""`` at end of input. Ctrl-C discards the line."""
    while True:
        try:
            return await process.stdin.readline()
        except asyncssh.BreakReceived:
            _discard_typed_line(process)
            return "\n"  # an empty line: the caller prompts again
        except (asyncssh.TerminalSizeChanged, asyncssh.SignalReceived):
            # The line editor redraws by itself; the line being typed survives.
            continue


def _discard_typed_line(process: Process) -> None:
    # Ctrl-C reaches us as a break but leaves the half-typed line in the
    # editor; clear it so the fresh prompt starts empty, as in a Unix shell.
    channel = process.channel
    if (
        isinstance(channel, asyncssh.SSHLineEditorChannel)
        and process.get_terminal_type()
    ):
        channel.clear_input()
    process.stdout.write("^C\n")


def _execute(
    line: str, ctx: ConsoleContext, user: str, *, interactive: bool
) -> CommandResult:
    """Run a line; a bug in a command is logged once and reported in one line."""
    try:
        result = run_command(line, ctx, interactive=interactive)
    except Exception:
        log.exception("console command crashed user=%s command=%r", user, line)
        return CommandResult(
            "error: internal error; see the simulator log", EXIT_FAILED
        )
    if line:
        _log_outcome(user, line, result)
    return result


def _log_outcome(
    user: str, line: str, result: CommandResult, *, event: str = "console command"
) -> None:
    if result.confirmation is not None:
        outcome = "awaiting confirmation"
    elif result.ok:
        outcome = "ok"
    else:
        outcome = result.output
    log.info(
        "%s user=%s command=%r status=%d outcome=%r",
        event,
        user,
        line,
        result.status,
        outcome,
    )


def _banner(ctx: ConsoleContext) -> str:
    return (
        f"{ctx.model} {ctx.version}, node {ctx.node_id}: admin console\n"
        "Type 'help' for the commands, 'exit' to leave."
    )


def _write(stream: asyncssh.SSHWriter[str], text: str) -> None:
    if text:
        stream.write(f"{text}\n")
