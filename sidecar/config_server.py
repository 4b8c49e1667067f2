"""``[server]``: the XKS listener, its TLS and mTLS, limits and ping port.

Maps the table onto ``sidecar.dataplane.DataplaneConfig``. TLS is on unless
``allow_plaintext_for_development`` says otherwise (spec, "Authentication":
HTTPS is required between KMS and the proxy), and mutual TLS is on unless
``[server.mtls] enabled = false``: a leaked SigV4 secret is useless to anyone
who does not also hold a KMS client certificate (same section), so the safe
setting is the default and turning it off is an explicit act.

``workers`` (a number, or ``"auto"`` for the CPUs this process may run on)
and ``max_in_flight`` shape the process model and overload protection
(``sidecar.workers``, ``sidecar.throttle``); see docs/configuration.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sidecar.config_reader import ConfigError, Table
from sidecar.config_secrets import check_private_file, secret_source
from sidecar.dataplane import (
    DataplaneConfig,
    HttpLimits,
    MutualTlsSettings,
    ParserName,
    TlsSettings,
    kms_client_common_name,
)

_DEFAULT_LIMITS = HttpLimits()
_DEFAULT_TLS_HANDSHAKE_S = 10.0
_DEFAULT_SHUTDOWN_GRACE_S = 10.0
_MAX_CONNECTIONS = 1_000_000
_PARSERS = [parser.value for parser in ParserName]
# Beyond a few per CPU, more workers only add memory and HSM connections;
# the bound catches a typo, not a tuning choice.
_MAX_WORKERS = 256
_MAX_IN_FLIGHT = 1_000_000
AUTO_WORKERS = "auto"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The data plane's settings plus what only the operator tools need."""

    dataplane: DataplaneConfig
    # "https://<fqdn>[:port]" as registered in KMS (XksProxyUriEndpoint);
    # None: derived from the server certificate by `kms-console`.
    public_endpoint: str | None
    # Worker processes sharing the port (``sidecar.workers``); 1 serves in
    # the process that was started, with no supervisor.
    workers: int = 1
    # Requests one worker admits at once before answering ThrottlingException
    # (``sidecar.throttle``); None: no cap.
    max_in_flight: int | None = None


def server_settings(table: Table, region: str | None) -> ServerSettings:
    """``[server]``; ``region`` is the keystores' one region, if they agree."""
    plaintext = table.boolean("allow_plaintext_for_development", False)
    tls = _tls(table, region, plaintext)
    ping_port = table.optional_integer("ping_port", 0, 65535)
    try:
        dataplane = DataplaneConfig(
            host=table.text("listen", "127.0.0.1"),
            port=table.port("port", 8443),
            tls=tls,
            allow_plaintext_for_development=plaintext,
            limits=_limits(table.table("limits")),
            parser=ParserName(table.choice("parser", "httptools", _PARSERS)),
            max_connections=table.optional_integer(
                "max_connections", 1, _MAX_CONNECTIONS
            ),
            reuse_port=table.boolean("reuse_port", False),
            shutdown_grace=table.seconds("shutdown_grace_s", _DEFAULT_SHUTDOWN_GRACE_S),
            ping_port=ping_port,
            ping_host=table.optional_text("ping_listen"),
        )
    except ValueError as exc:
        raise table.error(None, str(exc)) from exc
    endpoint = table.optional_text("public_endpoint")
    if endpoint is not None and not endpoint.startswith("https://"):
        raise table.error("public_endpoint", "must start with https://")
    workers = _workers(table)
    max_in_flight = table.optional_integer("max_in_flight", 1, _MAX_IN_FLIGHT)
    table.finish()
    return ServerSettings(dataplane, endpoint, workers, max_in_flight)


def _workers(table: Table) -> int:
    """``workers``: a whole number, or "auto" for the CPUs we may run on."""
    if not table.has("workers"):
        return 1
    try:
        # Table has no "number or word" getter; read it as text first and,
        # if it is not text, as a number (whose own error then applies).
        word = table.optional_text("workers")
    except ConfigError:
        return table.integer("workers", 1, 1, _MAX_WORKERS)
    if word != AUTO_WORKERS:
        raise table.error("workers", f'must be a whole number or "auto", not {word!r}')
    return available_cpus()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, so taskset and cpusets
    count); a container's CFS quota (cpu.max) is not seen here."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def endpoint_from_certificate(chain: Path, port: int) -> str | None:
    """``https://<first DNS name of the leaf>[:port]``, or None if it has none.

    What KMS's XksProxyUriEndpoint must be: the name the server certificate
    is issued for (spec, "Authentication"), never an IP address.
    """
    try:
        leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        return None
    dns_names = names.value.get_values_for_type(x509.DNSName)
    if not dns_names:
        return None
    return f"https://{dns_names[0]}" + ("" if port == 443 else f":{port}")


def _tls(table: Table, region: str | None, plaintext: bool) -> TlsSettings | None:
    tls = table.table("tls")
    mtls = table.table("mtls")
    if plaintext:
        if tls.names() or mtls.names():
            raise table.error(
                "allow_plaintext_for_development",
                "is true, yet [server.tls] or [server.mtls] is set; remove one",
            )
        return None
    passphrase_file, passphrase_env = secret_source(tls, "key_passphrase")
    if passphrase_file is not None:
        check_private_file(tls, "key_passphrase_file", passphrase_file)
    settings = TlsSettings(
        certificate_chain=tls.existing_file("certificate_chain"),
        private_key=tls.existing_file("private_key"),
        key_passphrase_file=passphrase_file,
        key_passphrase_env=passphrase_env,
        mutual_tls=_mutual_tls(mtls, region),
        handshake_timeout=tls.seconds("handshake_timeout_s", _DEFAULT_TLS_HANDSHAKE_S),
    )
    tls.finish()
    return settings


def _mutual_tls(mtls: Table, region: str | None) -> MutualTlsSettings | None:
    enabled = mtls.boolean("enabled", True)
    if not enabled:
        mtls.finish()
        return None
    if not mtls.has("client_ca"):
        raise mtls.error(
            "client_ca",
            "missing; name the CA bundle of the KMS client certificate (Amazon"
            " Trust Services), or set enabled = false to turn mutual TLS off",
        )
    client_ca = mtls.existing_file("client_ca")
    name = mtls.optional_text("client_common_name")
    if name is None and region is None:
        raise mtls.error(
            "client_common_name",
            "missing, and the keystores name more than one region; set it to"
            " cks.kms.<region>.amazonaws.com",
        )
    mtls.finish()
    return MutualTlsSettings(client_ca, name or kms_client_common_name(str(region)))


def _limits(table: Table) -> HttpLimits:
    d = _DEFAULT_LIMITS
    try:
        limits = HttpLimits(
            max_header_bytes=table.integer(
                "max_header_bytes", d.max_header_bytes, 1024, 1 << 20
            ),
            max_header_count=table.integer(
                "max_header_count", d.max_header_count, 8, 1024
            ),
            max_body_bytes=table.integer(
                "max_body_bytes", d.max_body_bytes, 1024, 16 << 20
            ),
            request_timeout=table.seconds("request_timeout_s", d.request_timeout),
            idle_timeout=table.seconds("idle_timeout_s", d.idle_timeout),
            send_timeout=table.seconds("send_timeout_s", d.send_timeout),
            max_requests_per_connection=table.optional_integer(
                "max_requests_per_connection", 1, 1 << 31
            ),
        )
    except ValueError as exc:
        raise table.error(None, str(exc)) from exc
    table.finish()
    return limits
