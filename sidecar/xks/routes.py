"""Request target → (keystore, operation, external key id), per the XKS URIs.

Spec, "API operations": a keystore is reached under its ``XksProxyUriPath``,
``[/<optional-path-prefix>]/kms/xks/v1``, and the four APIs live at

    <XksProxyUriPath>/health                                   GetHealthStatus
    <XksProxyUriPath>/keys/<externalKeyId>/metadata            GetKeyMetadata
    <XksProxyUriPath>/keys/<externalKeyId>/encrypt             Encrypt
    <XksProxyUriPath>/keys/<externalKeyId>/decrypt             Decrypt

All are POST; a GET on one of them MUST get 405 (we answer 405 for every
non-POST method there). Any other target is an ``InvalidUriPathException``.

Matching needs no search: every route ends in ``/health`` or in
``/keys/<id>/<op>`` where the id holds no ``/``, so peeling those tails off the
right of the path leaves exactly one candidate ``XksProxyUriPath``, looked up
in a dict. Two distinct configured paths can therefore never claim the same
request, whatever their nesting.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.xks.errors import InvalidUriPathException, MethodNotAllowed


class Operation(enum.Enum):
    """The four XKS APIs; the value is the last URI segment."""

    GET_HEALTH_STATUS = "health"
    GET_KEY_METADATA = "metadata"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"


_KEY_OPERATIONS = {
    op.value: op for op in Operation if op is not Operation.GET_HEALTH_STATUS
}

# "API operations": XksProxyUriPath is at most 128 characters of
# [A-Za-z0-9/_-] and, for version 1, ends in /kms/xks/v1.
URI_PATH_SUFFIX = "/kms/xks/v1"
MAX_URI_PATH = 128
_URI_PATH = re.compile(r"(?:/[A-Za-z0-9_-]+)*/kms/xks/v1")

# externalKeyId: at most 128 of [A-Za-z0-9._-].
MAX_KEY_ID = 128
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# "." and ".." pass the character rule but are RFC 3986 dot segments: HTTP
# clients and SigV4 signers (botocore removes dot segments before signing)
# rewrite them, so a key with such an id could never be reached reliably.
_DOT_SEGMENTS = frozenset({".", ".."})

# "The total URI length MUST NOT exceed 256 characters." Our reading: this is
# the whole URI KMS calls, "https://" + <server> + path, with no query. The
# limit binds KMS's configuration, so a real KMS request never breaks it; we
# check it to turn away stray traffic early. The path alone must fit in it
# too; with a Host header we count the full URI.
MAX_URI = 256
_SCHEME = "https://"
# Distinct targets remembered by a Router; the bound stops a flood of key ids
# from growing it. Chosen without measuring.
_ROUTE_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: ``external_key_id`` is None for health."""

    keystore: str
    operation: Operation
    external_key_id: str | None


def validate_uri_path(uri_path: str) -> str:
    """Return ``uri_path`` if it is a valid XksProxyUriPath, else ValueError.

    Beyond the spec's character rule we reject empty segments (``//``): botocore
    collapses them before signing, so such a path could not be authenticated.
    """
    if len(uri_path) > MAX_URI_PATH:
        raise ValueError(f"XksProxyUriPath longer than {MAX_URI_PATH} characters")
    if not _URI_PATH.fullmatch(uri_path):
        raise ValueError(
            f"XksProxyUriPath {uri_path!r} must be [/<prefix>]/kms/xks/v1 with"
            " segments of A-Z a-z 0-9 _ - only"
        )
    return uri_path


def is_valid_key_id(key_id: str) -> bool:
    """True if ``key_id`` is an externalKeyId we can route to."""
    return bool(_KEY_ID.fullmatch(key_id)) and key_id not in _DOT_SEGMENTS


class Router:
    """Resolve (method, request target) against the configured keystores."""

    def __init__(self, keystores: Iterable[tuple[str, str]]) -> None:
        self._by_path: dict[str, str] = {}
        # Targets matched before: a keystore's few key URIs come back on
        # every request. Only matches are kept; the configuration is fixed.
        self._routes: dict[str, Route] = {}
        names: set[str] = set()
        for name, uri_path in keystores:
            validate_uri_path(uri_path)
            if name in names:
                raise ValueError(f"keystore {name!r} is configured twice")
            if uri_path in self._by_path:
                raise ValueError(
                    f"keystores {self._by_path[uri_path]!r} and {name!r}"
                    f" share the XksProxyUriPath {uri_path!r}"
                )
            names.add(name)
            self._by_path[uri_path] = name

    def resolve(self, method: str, target: str, host: str | None = None) -> Route:
        """Route a request, or raise InvalidUriPathException / MethodNotAllowed.

        ``target`` is the raw request target from the request line, not
        percent-decoded: no valid XKS path contains ``%``, so decoding could
        only turn an invalid path into a valid one.
        """
        if len(target) > MAX_URI or (
            host is not None and len(_SCHEME) + len(host) + len(target) > MAX_URI
        ):
            raise InvalidUriPathException(f"URI longer than {MAX_URI} characters")
        route = self._routes.get(target)
        if route is None:
            route = self._match(target)
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[target] = route
        if method != "POST":
            raise MethodNotAllowed()
        return route

    def _match(self, target: str) -> Route:
        if "?" in target:
            # The spec's APIs take no query parameters and SigV4's canonical
            # query string is defined as "" for them (Appendix A, Task 1).
            raise InvalidUriPathException("XKS URIs take no query string")
        head, _, last = target.rpartition("/")
        if last == "health":
            return Route(self._keystore(head), Operation.GET_HEALTH_STATUS, None)
        operation = _KEY_OPERATIONS.get(last)
        head, _, key_id = head.rpartition("/")
        uri_path, _, keys = head.rpartition("/")
        if operation is None or keys != "keys" or not is_valid_key_id(key_id):
            raise InvalidUriPathException()
        return Route(self._keystore(uri_path), operation, key_id)

    def _keystore(self, uri_path: str) -> str:
        name = self._by_path.get(uri_path)
        if name is None:
            raise InvalidUriPathException()
        return name

    def __repr__(self) -> str:
        return f"Router({sorted(self._by_path.items())!r})"
