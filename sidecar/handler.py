"""The XKS request pipeline: the one place a request's way is assembled.

The data plane hands over an ``HttpRequest``; this module runs it through the
sans-IO core in the order docs/architecture.md gives ("One request's way"):

    routes    target -> keystore, operation, external key id   (404, 405)
    sigv4     with that keystore's credentials                 (401)
    messages  body -> typed request                            (400, 501)
    policy    secondary authorization, inside ``service``      (403)
    service   with the keystore's backend                      (4xx, 5xx)

and turns the outcome into an ``HttpResponse``: 200 with the response's
compact JSON, or the error's status with ``{"errorName","errorMessage"}``.
Why a request failed goes into the log line, never to the caller: a SigV4
failure answers the same generic 401 whatever the cause (spec,
"Authentication"; a prober learns nothing).

The one catch-all of the request boundary is here: an unexpected exception
is logged once with its traceback and answered InternalException.
Cancellation (shutdown, timeouts) is never caught: it passes through, after
the request's log line records it as "cancelled".

Every request leaves exactly one line on ``sidecar.audit`` (``audit.py``).
The hot path copies no headers and re-encodes no bodies: the core reads the
request's own tuples and bytes, and responses encode themselves once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from sidecar import audit
from sidecar.audit import AuditRecord
from sidecar.backends.base import KeyManager
from sidecar.dataplane.messages import JSON_CONTENT_TYPE, HttpRequest, HttpResponse
from sidecar.throttle import Throttle
from sidecar.xks import service
from sidecar.xks.errors import HttpError, InternalException, ThrottlingException
from sidecar.xks.messages import (
    DecryptRequest,
    EncryptRequest,
    GetHealthStatusRequest,
    GetKeyMetadataRequest,
    RequestMetadata,
    XksRequest,
    parse_request,
    peek_request_id,
)
from sidecar.xks.policy import Policy
from sidecar.xks.responses import XksResponse
from sidecar.xks.routes import Router
from sidecar.xks.service import HealthReporter
from sidecar.xks.sigv4 import SigV4Verifier

log = logging.getLogger("sidecar.handler")

_JSON_HEADERS = (JSON_CONTENT_TYPE,)
_INTERNAL = InternalException()
_INTERNAL_RESPONSE = HttpResponse(_INTERNAL.status, _JSON_HEADERS, _INTERNAL.body())
OK = "ok"
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Keystore:
    """What serving one keystore takes, built once at start-up."""

    name: str
    uri_path: str
    verifier: SigV4Verifier
    policy: Policy
    backend: KeyManager
    health: HealthReporter


class XksHandler:
    """``HttpRequest -> HttpResponse`` for every configured keystore."""

    def __init__(
        self,
        keystores: Iterable[Keystore],
        *,
        clock: Callable[[], float] = time.time,
        throttle: Throttle | None = None,
    ) -> None:
        self._keystores: Mapping[str, Keystore] = {k.name: k for k in keystores}
        self._router = Router((k.name, k.uri_path) for k in self._keystores.values())
        self._clock = clock  # wall clock, for SigV4's x-amz-date check
        self._throttle = throttle or Throttle()  # default: no limits

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        tls, peer = request.tls, request.peer
        record = AuditRecord(
            f"{peer[0]}:{peer[1]}" if peer is not None else None,
            tls.client_common_name if tls is not None else None,
        )
        token = audit.begin(record)
        # One coroutine for the answer and its error mapping (they were two:
        # each await of a coroutine costs its frame on every request).
        try:
            try:
                body = await self._handle(request, record)
            except HttpError as exc:
                record.reason = exc.reason or exc.message
                headers = (
                    (*_JSON_HEADERS, *exc.headers) if exc.headers else _JSON_HEADERS
                )
                response = HttpResponse(exc.status, headers, exc.body())
                outcome = exc.error_name
            except Exception:
                log.exception(
                    "unexpected error in %s %s; answered InternalException",
                    record.keystore,
                    record.operation,
                )
                record.reason = "unexpected error; traceback in the log"
                response, outcome = _INTERNAL_RESPONSE, _INTERNAL.error_name
            else:
                response, outcome = HttpResponse(200, _JSON_HEADERS, body), OK
        except BaseException:
            _emit(record, CANCELLED, 0, started)
            raise
        finally:
            audit.end(token)
        _emit(record, outcome, response.status, started)
        return response

    async def _handle(self, request: HttpRequest, record: AuditRecord) -> bytes:
        host = request.header(b"host")
        route = self._router.resolve(
            request.method,
            request.raw_path,
            host.decode("latin-1") if host is not None else None,
        )
        record.keystore = route.keystore
        # ``_value_``: ``.value`` is a property, and an Enum member as a dict
        # key hashes in Python code; this runs on every request.
        record.operation = route.operation._value_
        record.external_key_id = route.external_key_id
        keystore = self._keystores[route.keystore]
        # Overload: a request that would be refused anyway is refused before
        # SigV4 and the body are looked at (``throttle``); it spends nothing.
        # Its line still carries the kmsRequestId, found by a search.
        now = time.monotonic()  # for both throttle checks: tens of microseconds apart
        try:
            self._throttle.refuse_early(route.keystore, route.operation, now)
        except ThrottlingException:
            request_id = peek_request_id(request.body)
            record.metadata = (("kmsRequestId", request_id),) if request_id else ()
            raise

        verified = keystore.verifier.verify(
            request.method,
            request.raw_path,
            request.headers,
            request.body,
            self._clock(),
        )
        record.access_key_id = verified.access_key_id

        xks_request = parse_request(route.operation, request.body)
        record.metadata = _metadata_fields(xks_request.metadata)
        # Overload protection (``throttle``) just before the backend, where a
        # request would queue: only authenticated requests spend a keystore's
        # quota, and a refusal here still logs its kmsRequestId.
        with self._throttle.admit(route.keystore, route.operation, now):
            response = await _perform(keystore, route.external_key_id, xks_request)
        return response.to_json()


def _perform(
    keystore: Keystore, key_id: str | None, request: XksRequest
) -> Awaitable[XksResponse]:
    """The service call for ``request``; policy is applied inside ``service``.

    A plain function returning the service's coroutine, so the request does
    not pay a coroutine of its own for the dispatch. Encrypt, the most
    frequent, is tried first.
    """
    if isinstance(request, GetHealthStatusRequest):
        return service.get_health_status(request, keystore.health)
    # routes gives every key operation an external key id.
    assert key_id is not None
    policy, backend = keystore.policy, keystore.backend
    if isinstance(request, EncryptRequest):
        return service.encrypt(key_id, request, policy, backend)
    if isinstance(request, DecryptRequest):
        return service.decrypt(key_id, request, policy, backend)
    assert isinstance(request, GetKeyMetadataRequest)
    return service.get_key_metadata(key_id, request, policy, backend)


def _metadata_fields(
    metadata: RequestMetadata,
) -> tuple[tuple[str, str | None], ...]:
    # Spec, "Logging": request metadata SHOULD be logged, kmsRequestId above
    # all. Spelled as in the spec so the log greps like CloudTrail.
    return (
        ("kmsRequestId", metadata.kms_request_id),
        ("kmsOperation", metadata.kms_operation),
        ("awsPrincipalArn", metadata.aws_principal_arn),
        ("kmsKeyArn", metadata.kms_key_arn),
        ("kmsViaService", metadata.kms_via_service),
        ("awsSourceVpc", metadata.aws_source_vpc),
        ("awsSourceVpce", metadata.aws_source_vpce),
    )


def _emit(record: AuditRecord, outcome: str, status: int, started: float) -> None:
    audit.emit(record, outcome, status, (time.perf_counter() - started) * 1000)
