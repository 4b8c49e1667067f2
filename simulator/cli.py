"""``cryptohub-sim``: run the simulator, or create its master key.

    cryptohub-sim serve --config fixtures/dev/simulator.toml [--ready-file PATH]
    cryptohub-sim init-master-key var/simulator/master.key

Logs go to stderr, one line per event. SIGINT and SIGTERM stop the simulator
cleanly: the services are cancelled, open connections closed, the key store
closed. A bad configuration, master key, certificate or busy port ends the
start with one line naming the problem and exit status 1; secrets are never
taken from arguments, so no key can leak through the process list.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import trio

from simulator.app import BoundPorts, run_simulator
from simulator.config import ConfigError, SimulatorConfig, load_config
from simulator.console import ConsoleSetupError
from simulator.errors import SimulatorError
from simulator.logformat import LineFormatter
from simulator.masterkey import generate_master_key_file

log = logging.getLogger("simulator")

# Errors that mean "cannot start as configured", reported in one line, not as
# a traceback. OSError covers a port already in use.
_STARTUP_ERRORS = (ConfigError, ConsoleSetupError, SimulatorError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m simulator``."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        if args.command == "serve":
            return _serve(args.config, args.ready_file)
        return _init_master_key(args.path)
    except BaseException as exc:
        problems = list(_leaves(exc))
        if not all(isinstance(problem, _STARTUP_ERRORS) for problem in problems):
            raise
    # Expected failures get one line each; anything else kept its traceback.
    for problem in problems:
        log.error("cannot run: %s", problem)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptohub-sim", description="Software CryptoHub (HSM) simulator."
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="least severe log level written to stderr (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the host protocol and console")
    serve.add_argument("--config", type=Path, required=True, help="simulator.toml")
    serve.add_argument(
        "--ready-file",
        type=Path,
        help='once listening, write {"ports": {"host": N, "console": N}} here',
    )
    init = commands.add_parser(
        "init-master-key", help="write a new random master key file (mode 0600)"
    )
    init.add_argument("path", type=Path, help="where to write it; never overwritten")
    return parser


def _configure_logging(level: str) -> None:
    # LINE_FORMAT shows no thread or process, so records need not look them
    # up: a LogRecord then takes about 2.3 us to make instead of 5.8, once
    # per host command (multiprocessing's current_process and getpid were
    # most of it).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # asyncssh narrates every packet exchange at INFO; the console logs the
    # events that matter (logins, refusals) itself.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def _serve(config_path: Path, ready_file: Path | None) -> int:
    config = load_config(config_path)
    trio.run(_serve_until_signalled, config, ready_file)
    return 0


async def _serve_until_signalled(
    config: SimulatorConfig, ready_file: Path | None
) -> None:
    # The receiver is installed before anything starts, so a signal during
    # start-up also stops cleanly instead of raising KeyboardInterrupt.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(run_simulator, config)
            if ready_file is not None:
                await trio.to_thread.run_sync(_write_ready_file, ready_file, ports)
            async for signum in signals:
                log.info("stopping signal=%s", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def _write_ready_file(path: Path, ports: BoundPorts) -> None:
    """Tell a supervisor (or a test) where we listen, now that we do.

    Written under another name and renamed, so a reader never sees half.
    """
    document = {"ports": {"host": ports.host_port, "console": ports.console_port}}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document) + "\n")
    temporary.replace(path)


def _init_master_key(path: Path) -> int:
    generate_master_key_file(path)
    print(f"wrote a new master key to {path}", file=sys.stderr)
    return 0


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
