"""The load balancer's health probe: GET /ping answered 200 over plain HTTP.

Spec, "Load balancer health checks": a proxy behind a load balancer "MUST
also implement the necessary health checks". An AWS Network Load Balancer
probes with plain HTTP(S) GETs and cannot present KMS's mTLS client
certificate, so the probe gets its own plain-HTTP listener. It says only that
this process is up and serving; the deep check of the HSM is GetHealthStatus.
"""

from __future__ import annotations

from sidecar.dataplane.messages import HttpRequest, HttpResponse, json_response

PING_PATH = "/ping"

_OK = json_response(200, {"status": "ok"})
_NOT_FOUND = json_response(
    404, {"errorName": "NotFound", "errorMessage": "no such path"}
)
_NOT_ALLOWED = json_response(
    405,
    {"errorName": "MethodNotAllowed", "errorMessage": "use GET"},
    headers=((b"allow", b"GET, HEAD"),),
)


async def ping_handler(request: HttpRequest) -> HttpResponse:
    """200 ``{"status":"ok"}`` for GET /ping; 404 or 405 for anything else."""
    if request.raw_path.partition("?")[0] != PING_PATH:
        return _NOT_FOUND
    if request.method not in ("GET", "HEAD"):
        return _NOT_ALLOWED
    return _OK
