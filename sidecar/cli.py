"""``xks-sidecar`` / ``python -m sidecar``: serve, check a config, print KMS's.

::

    python -m sidecar serve --config sidecar.toml [--ready-file PATH]
    python -m sidecar check-config --config sidecar.toml
    python -m sidecar kms-console --config sidecar.toml --keystore NAME

Logs go to stderr, one JSON object per line (``[logging] format``). SIGTERM or
SIGINT shuts down gracefully (stop accepting, finish requests in flight,
close the HSM connections); a second signal stops at once. A configuration,
certificate or port problem ends the start with one line naming it and exit
status 1. Secrets are never taken from arguments, so none can leak through
the process list.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import trio

from sidecar.app import RunningSidecar, run_sidecar
from sidecar.audit import AUDIT_LOGGER_NAME, JsonLineFormatter, TextLineFormatter
from sidecar.backends.cryptohub.settings import CryptoHubConfigError
from sidecar.backends.cryptohub.tls import client_tls_context
from sidecar.config import ConfigError, LoggingSettings, SidecarConfig, load_config
from sidecar.config_server import endpoint_from_certificate
from sidecar.dataplane import TlsConfigError, build_server_tls
from sidecar.xks.sigv4 import Credential, kms_format_problems

log = logging.getLogger("sidecar")

# "Cannot start as configured", reported in one line, not as a traceback.
# OSError covers a port already in use.
_STARTUP_ERRORS = (ConfigError, TlsConfigError, CryptoHubConfigError, OSError)

_KMS_CONSOLE_HELP = (
    "print the JSON file the AWS KMS console accepts for this keystore"
    " (XksProxyUriEndpoint, XksProxyUriPath, AccessKeyId, RawSecretAccessKey)."
    " It PRINTS THE SECRET ACCESS KEY: that is its purpose; send the output"
    " straight to the operator who registers the keystore, not to a log"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m sidecar``."""
    args = _parser().parse_args(argv)
    _configure_logging(LoggingSettings(), args.log_level)
    try:
        config = load_config(args.config)
        _configure_logging(config.logging, args.log_level)
        if args.command == "serve":
            trio.run(_serve_until_signalled, config, args.ready_file)
            return 0
        if args.command == "check-config":
            return _check_config(config)
        return _kms_console(config, args.keystore, args.access_key_id)
    except BaseException as exc:
        problems = list(_leaves(exc))
        if not all(isinstance(problem, _STARTUP_ERRORS) for problem in problems):
            raise
    for problem in problems:
        log.error("cannot run: %s", problem)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xks-sidecar", description="AWS KMS XKS proxy for Futurex CryptoHub."
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="least severe level logged to stderr (default: [logging] level)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the XKS proxy")
    serve.add_argument(
        "--ready-file",
        type=Path,
        help='once listening, write {"ports": {"xks": N, "ping": N}} here',
    )
    check = commands.add_parser(
        "check-config", help="validate the configuration and its files, then exit"
    )
    console = commands.add_parser("kms-console", help=_KMS_CONSOLE_HELP)
    console.add_argument("--keystore", required=True, help="the keystore's name")
    console.add_argument(
        "--access-key-id", help="which credential (default: the last one listed)"
    )
    for command in (serve, check, console):
        command.add_argument("--config", type=Path, required=True, help="sidecar.toml")
    return parser


def _configure_logging(settings: LoggingSettings, override: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    json_lines = settings.format == "json"
    handler.setFormatter(JsonLineFormatter() if json_lines else TextLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(override or settings.level)
    audit = logging.getLogger(AUDIT_LOGGER_NAME)
    audit.setLevel(logging.INFO if settings.audit else logging.CRITICAL + 1)


# -- serve ------------------------------------------------------------------------


async def _serve_until_signalled(
    config: SidecarConfig, ready_file: Path | None
) -> None:
    # The receiver is installed before anything starts, so a signal during
    # start-up also stops cleanly instead of raising KeyboardInterrupt.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            running: RunningSidecar = await nursery.start(
                _run_then_stop, config, nursery.cancel_scope
            )
            if ready_file is not None:
                await trio.to_thread.run_sync(
                    _write_ready_file, ready_file, running.ready_document()
                )
            nursery.start_soon(_stop_on_signals, signals, running, nursery.cancel_scope)
    if ready_file is not None:
        # Gone once the sidecar no longer serves; a supervisor may watch it.
        await trio.Path(ready_file).unlink(missing_ok=True)


async def _run_then_stop(
    config: SidecarConfig,
    others: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[RunningSidecar],
) -> None:
    await run_sidecar(config, task_status=task_status)
    others.cancel()  # the sidecar is done: stop listening for signals


async def _stop_on_signals(
    signals: AsyncIterator[int],
    running: RunningSidecar,
    everything: trio.CancelScope,
) -> None:
    graceful = True
    async for signum in signals:
        name = signal.Signals(signum).name
        if graceful:
            log.info("stopping signal=%s: finishing requests in flight", name)
            running.request_shutdown()
            graceful = False
        else:
            log.warning("stopping now signal=%s", name)
            everything.cancel()


def _write_ready_file(path: Path, document: dict[str, object]) -> None:
    # Written under another name and renamed, so a reader never sees half.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document) + "\n")
    temporary.replace(path)


# -- check-config -------------------------------------------------------------------


def _check_config(config: SidecarConfig) -> int:
    """Build everything a start would build from files, without serving."""
    if config.server.dataplane.tls is not None:
        build_server_tls(config.server.dataplane.tls)
    for backend in config.backends.values():
        for node in backend.settings.nodes:
            client_tls_context(node)
    for keystore in config.keystores:
        for warning in keystore.kms_format_warnings:
            log.warning("KMS would refuse this credential: %s", warning)
        print(
            f"keystore {keystore.name}: {keystore.uri_path} region {keystore.region}"
            f" backend {keystore.backend}, {len(keystore.credentials)} credential(s),"
            f" {len(keystore.policy.rules)} policy rule(s)"
        )
    print(f"{config.source}: OK")
    return 0


# -- kms-console ------------------------------------------------------------------


def _kms_console(
    config: SidecarConfig, keystore_name: str, access_key_id: str | None
) -> int:
    try:
        keystore = config.keystore(keystore_name)
    except KeyError:
        names = [k.name for k in config.keystores]
        raise ConfigError(f"no keystore {keystore_name!r}; known: {names}") from None
    credential = _credential(keystore.credentials, access_key_id)
    for problem in kms_format_problems(credential):
        log.warning("KMS would refuse this credential: %s", problem)
    document = {
        "XksProxyUriEndpoint": _endpoint(config),
        "XksProxyUriPath": keystore.uri_path,
        "XksProxyAuthenticationCredential": {
            "AccessKeyId": credential.access_key_id,
            "RawSecretAccessKey": credential.secret.reveal(),
        },
    }
    print(json.dumps(document, indent=4))
    return 0


def _credential(credentials: Sequence[Credential], wanted: str | None) -> Credential:
    if wanted is None:
        return credentials[-1]  # rotation adds the new pair at the end
    for credential in credentials:
        if credential.access_key_id == wanted:
            return credential
    raise ConfigError(f"the keystore has no access key id {wanted!r}")


def _endpoint(config: SidecarConfig) -> str:
    server = config.server
    tls = server.dataplane.tls
    endpoint = server.public_endpoint
    if endpoint is None and tls is not None:
        endpoint = endpoint_from_certificate(
            tls.certificate_chain, server.dataplane.port
        )
    if endpoint is None:
        raise ConfigError(
            f"{config.source}: [server] public_endpoint: missing, and the server"
            " certificate names no DNS name; set it to https://<your proxy's name>"
        )
    return endpoint


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
