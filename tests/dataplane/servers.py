"""Servers for the data plane tests: real sockets on port 0, real TLS."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import trio

from fixtures.pki import Pki
from sidecar.dataplane import (
    DataplaneConfig,
    HttpLimits,
    HttpRequest,
    HttpResponse,
    MutualTlsSettings,
    ParserName,
    RunningDataplane,
    TlsSettings,
    serve_dataplane,
)


async def echo_handler(request: HttpRequest) -> HttpResponse:
    """Answers 200 with the request body, naming the path in a header."""
    return HttpResponse(200, ((b"x-path", request.raw_path.encode()),), request.body)


def tls_settings(pki: Pki, *, mtls: bool = False, rsa: bool = False) -> TlsSettings:
    mutual = (
        MutualTlsSettings.for_region(pki.aws_ca_bundle, "us-east-1") if mtls else None
    )
    if rsa:
        return TlsSettings(
            pki.sidecar_server_rsa_chain, pki.sidecar_server_rsa_key, mutual_tls=mutual
        )
    return TlsSettings(
        pki.sidecar_server_chain, pki.sidecar_server_key, mutual_tls=mutual
    )


async def start_dataplane(
    nursery: trio.Nursery,
    pki: Pki,
    handler: Any = echo_handler,
    *,
    mtls: bool = False,
    rsa: bool = False,
    parser: ParserName = ParserName.HTTPTOOLS,
    limits: HttpLimits | None = None,
    **overrides: Any,
) -> RunningDataplane:
    config = DataplaneConfig(
        host="127.0.0.1",
        port=0,
        tls=tls_settings(pki, mtls=mtls, rsa=rsa),
        parser=parser,
        limits=limits or HttpLimits(),
    )
    config = replace(config, **overrides)
    running = await nursery.start(serve_dataplane, config, handler)
    assert isinstance(running, RunningDataplane)
    return running
