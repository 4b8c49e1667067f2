"""``xks-sidecar`` / ``python -m sidecar``: serve, check a config, print KMS's.

::

    python -m sidecar serve --config sidecar.toml [--ready-file PATH]
    python -m sidecar check-config --config sidecar.toml
    python -m sidecar kms-console --config sidecar.toml --keystore NAME

Logs go to stderr, one JSON object per line (``[logging] format``). SIGTERM or
SIGINT shuts down gracefully (stop accepting, finish requests in flight,
close the HSM connections); a second signal stops at once. With ``[server]
workers`` above 1, ``serve`` supervises that many worker processes sharing
the ports (``sidecar.workers``) and passes the signals on to them. A configuration,
certificate or port problem ends the start with one line naming it and exit
status 1. Secrets are never taken from arguments, so none can leak through
the process list.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import trio

from sidecar.app import RunningSidecar
from sidecar.backends.cryptohub.settings import CryptoHubSettings
from sidecar.backends.cryptohub.tls import client_tls_context
from sidecar.config import (
    ConfigError,
    KeystoreSettings,
    LoggingSettings,
    SidecarConfig,
    load_config,
)
from sidecar.config_server import endpoint_from_certificate
from sidecar.dataplane import build_server_tls
from sidecar.serving import (
    configure_logging,
    report_startup_problems,
    serve_until_signalled,
    startup_problems,
    write_ready_file,
)
from sidecar.workers import supervise
from sidecar.xks.sigv4 import Credential, kms_format_problems

log = logging.getLogger("sidecar")

_KMS_CONSOLE_HELP = (
    "print the JSON file the AWS KMS console accepts for this keystore"
    " (XksProxyUriEndpoint, XksProxyUriPath, AccessKeyId, RawSecretAccessKey)."
    " It PRINTS THE SECRET ACCESS KEY: that is its purpose; send the output"
    " straight to the operator who registers the keystore, not to a log"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m sidecar``."""
    args = _parser().parse_args(argv)
    configure_logging(LoggingSettings(), args.log_level)
    try:
        config = load_config(args.config)
        configure_logging(config.logging, args.log_level)
        if args.command == "serve":
            return _serve(config, args.ready_file, args.log_level)
        if args.command == "check-config":
            return _check_config(config)
        return _kms_console(config, args.keystore, args.access_key_id)
    except BaseException as exc:
        problems = startup_problems(exc)
        if problems is None:
            raise
    return report_startup_problems(problems)


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
        help='once listening, write {"ports": {"xks": N, "ping": N}} here'
        " (with several workers: once all listen, adding their process ids)",
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


# -- serve ------------------------------------------------------------------------


def _serve(
    config: SidecarConfig, ready_file: Path | None, log_level: str | None
) -> int:
    """One worker: serve in this process. Several: supervise worker processes."""
    if config.server.workers > 1:
        return supervise(config, ready_file, log_level)
    trio.run(_serve_in_process, config, ready_file)
    return 0


async def _serve_in_process(config: SidecarConfig, ready_file: Path | None) -> None:
    async def announce(running: RunningSidecar) -> None:
        if ready_file is not None:
            document = running.ready_document()
            await trio.to_thread.run_sync(write_ready_file, ready_file, document)

    await serve_until_signalled(config, announce)
    if ready_file is not None:
        # Gone once the sidecar no longer serves; a supervisor may watch it.
        await trio.Path(ready_file).unlink(missing_ok=True)


# -- check-config -------------------------------------------------------------------


def _check_config(config: SidecarConfig) -> int:
    """Build everything a start would build from files, without serving."""
    if config.server.dataplane.tls is not None:
        build_server_tls(config.server.dataplane.tls)
    for backend in config.backends.values():
        if isinstance(backend.settings, CryptoHubSettings):  # others have no nodes
            for node in backend.settings.nodes:
                client_tls_context(node)
    for keystore in config.keystores:
        for warning in keystore.kms_format_warnings:
            log.warning("KMS would refuse this credential: %s", warning)
        print(
            f"keystore {keystore.name}: {keystore.uri_path} region {keystore.region}"
            f" backend {keystore.backend}, {len(keystore.credentials)} credential(s),"
            f" {len(keystore.policy.rules)} policy rule(s), {_quota(keystore)}"
        )
    server = config.server
    in_flight = server.max_in_flight or "unlimited"
    print(f"server: {server.workers} worker(s), max_in_flight {in_flight} each")
    print(f"{config.source}: OK")
    return 0


def _quota(keystore: KeystoreSettings) -> str:
    quota = keystore.quota
    if quota is None:
        return "no quota"
    return f"quota {quota.requests_per_second:g}/s, burst {quota.burst:g}"


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
