"""The data plane: a Trio TLS listener speaking HTTP/1.1 to one handler.

It knows nothing about XKS. ``serve_dataplane`` accepts connections, runs the
TLS policy of ``tls`` (with optional mTLS), parses HTTP/1.1 with a parser
library, and awaits ``handler(HttpRequest) -> HttpResponse`` for each request.
docs/dataplane.md describes the policy, the limits and the measurements.
"""

from sidecar.dataplane.listener import RunningDataplane, serve_dataplane
from sidecar.dataplane.messages import (
    Handler,
    HttpRequest,
    HttpResponse,
    TlsInfo,
    json_response,
)
from sidecar.dataplane.settings import (
    DataplaneConfig,
    HttpLimits,
    MutualTlsSettings,
    ParserName,
    TlsSettings,
    kms_client_common_name,
)
from sidecar.dataplane.tls import ServerTls, TlsConfigError, build_server_tls

__all__ = [
    "DataplaneConfig",
    "Handler",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "MutualTlsSettings",
    "ParserName",
    "RunningDataplane",
    "ServerTls",
    "TlsConfigError",
    "TlsInfo",
    "TlsSettings",
    "build_server_tls",
    "json_response",
    "kms_client_common_name",
    "serve_dataplane",
]
