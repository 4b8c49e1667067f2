"""Verify the AWS Signature Version 4 on an XKS request (spec, Appendix A).

KMS signs every request with a keystore's access key id and secret access
key, service ``kms-xks-proxy``. We rebuild the signature from the request as
received and compare. The steps follow the SigV4 documentation the spec
points to; where an implementation detail matters we match botocore, which
is what KMS-compatible clients use:

* Canonical URI: the path as sent, with dot segments and empty segments
  removed and then percent-encoded once more (``quote(path, safe="/~")``;
  botocore's non-S3 rule). For the paths ``routes`` accepts (only
  ``[A-Za-z0-9._/-]``, no ``//``, no dot segments) this is the path itself.
* Canonical query string: always "" (Task 1); ``routes`` rejects queries.
* Canonical headers: exactly the headers named in SignedHeaders, lowercased,
  values trimmed with inner runs of whitespace folded to one space, repeated
  headers joined with ",". KMS signs ``host;x-amz-date``; ``curl
  --aws-sigv4`` adds ``content-type``. We require ``host`` and
  ``x-amz-date`` to be signed: without them the signature would bind neither
  the endpoint nor the time, and replay protection (Task 4) would be void.
* Payload hash: SHA-256 of the body we received. If the client sent
  ``x-amz-content-sha256`` it must equal that hash; "UNSIGNED-PAYLOAD" is
  refused, since the body is the request.
* The credential scope date must be the date of ``x-amz-date``, the service
  ``kms-xks-proxy``, and the region the keystore's, if one is configured.
* ``x-amz-date`` within ±5 minutes of ``now`` (Task 4).

Every failure raises AuthenticationFailedException with the same generic
message; the specific cause goes into its ``reason`` for our log only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn
from urllib.parse import quote

from sidecar.xks.errors import AuthenticationFailedException

SERVICE = "kms-xks-proxy"
ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
# Task 4: "Any requests more than 5 minutes in the past (or future ...)".
MAX_CLOCK_SKEW = 300.0
REQUIRED_SIGNED_HEADERS = frozenset({"host", "x-amz-date"})

_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_SCOPE_DATE = re.compile(r"[0-9]{8}")
_AMZ_DATE = re.compile(rb"([0-9]{8})T([0-9]{6})Z")
# Segments of unreserved characters that cannot be dot segments.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")
# Several regions and dates at once are rare; the bound only keeps a flood of
# bogus scopes from growing the cache. Chosen without measuring.
_SIGNING_KEY_CACHE_SIZE = 64
# Likewise for parsed Authorization headers (one per access key and day).
_PARSED_CACHE_SIZE = 64
_SIGNATURE_FIELD = b"Signature="
_SIGNATURE_HEX = re.compile(rb"[0-9a-f]{64}")


class Secret:
    """A secret access key; never shown by repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("a secret access key must not be empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class Credential:
    """One access key id and its secret; a keystore may have several."""

    access_key_id: str
    secret: Secret

    def __post_init__(self) -> None:
        if not _ACCESS_KEY_ID.fullmatch(self.access_key_id):
            raise ValueError("access key id must be letters and digits only")


def kms_format_problems(credential: Credential) -> list[str]:
    """Ways ``credential`` breaks the format KMS accepts (Appendix A).

    Not enforced here: the spec's own example key id breaks the length rule,
    so configuration may choose to warn rather than refuse.
    """
    problems = []
    if not re.fullmatch(r"[A-Z2-7]{20,30}", credential.access_key_id):
        problems.append("access key id: KMS wants 20-30 of A-Z and 2-7")
    if not re.fullmatch(r"[A-Za-z0-9+/=]{43,64}", credential.secret.reveal()):
        problems.append("secret access key: KMS wants 43-64 of A-Za-z0-9+/=")
    return problems


@dataclass(frozen=True, slots=True)
class Verified:
    """What a good signature established, for the request log."""

    access_key_id: str
    region: str


@dataclass(frozen=True, slots=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: str
    signature: str


class _Scope:
    """An Authorization header parsed and checked, less its signature, with
    what every request under it needs precomputed.

    A plain slotted class: it is built once per header text, and reading the
    parts ready-made saves re-encoding them per request (handler bench,
    docs/performance.md).
    """

    __slots__ = (
        "access_key_id",
        "date",
        "scope_line",
        "secret",
        "signed",
        "signed_line",
        "signing_key",
        "verified",
    )

    def __init__(
        self, auth: _Authorization, signed: list[str], secret: Secret, key: bytes
    ) -> None:
        self.access_key_id = auth.access_key_id
        self.date = auth.date
        self.secret = secret
        self.signing_key = key
        # (name, its bytes and ":"), in SignedHeaders order.
        self.signed = tuple((name, name.encode() + b":") for name in signed)
        self.signed_line = auth.signed_headers.encode()
        scope = f"{auth.date}/{auth.region}/{SERVICE}/{TERMINATOR}"
        self.scope_line = b"\n" + scope.encode() + b"\n"
        self.verified = Verified(auth.access_key_id, auth.region)


_STRING_TO_SIGN_HEAD = ALGORITHM.encode() + b"\n"


def _fail(reason: str) -> NoReturn:
    raise AuthenticationFailedException(reason=reason)


class SigV4Verifier:
    """Checks signatures against one keystore's active credentials."""

    def __init__(
        self,
        credentials: Iterable[Credential],
        *,
        region: str | None = None,
        max_clock_skew: float = MAX_CLOCK_SKEW,
    ) -> None:
        self._region = region
        self._max_skew = max_clock_skew
        self._secrets: dict[str, Secret] = {}
        self._signing_keys: dict[tuple[str, str, str], bytes] = {}
        # Authorization headers already parsed, with their signature cut out:
        # KMS repeats the rest of the header on every request of a day.
        self._parsed: dict[bytes, _Scope] = {}
        # The last x-amz-date that passed, its scope date, and its Unix time.
        self._last_date: tuple[bytes, str, float] = (b"", "", 0.0)
        self.set_credentials(credentials)

    def set_credentials(self, credentials: Iterable[Credential]) -> None:
        """Replace the active credentials, e.g. during a rotation.

        Spec, "SigV4 credentials rotation": at least two sets at once, and
        changes without a restart. The swap is a single assignment.
        """
        secrets: dict[str, Secret] = {}
        for credential in credentials:
            if credential.access_key_id in secrets:
                # Appendix A: an access key id must identify one secret.
                raise ValueError(
                    f"access key id {credential.access_key_id} is configured twice"
                )
            secrets[credential.access_key_id] = credential.secret
        self._secrets = secrets
        self._signing_keys = {}
        self._parsed = {}

    def verify(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        now: float,
    ) -> Verified:
        """Verify the request or raise AuthenticationFailedException.

        ``path`` is the raw path of the request target; ``headers`` are the
        received (name, value) pairs in any letter case; ``now`` is Unix time.
        The checks run in the order the module docstring gives, so a request
        with several faults always logs the same reason.
        """
        collected, repeats = _collect(headers)
        header = collected.pop(b"authorization", None)
        repeated = repeats.pop(b"authorization", None) if repeats else None
        found = self._cached(header) if repeated is None else None
        if found is None:
            found = self._parse(repeated or ([header] if header is not None else None))
        scope, signature = found
        amz_date = self._checked_date(collected, repeats, scope.date, now)
        payload_hash = _payload_hash(body, collected, repeats)
        canonical = _canonical_request(
            method, path, scope, collected, repeats, payload_hash
        )
        string_to_sign = b"".join(
            (
                _STRING_TO_SIGN_HEAD,
                amz_date,
                scope.scope_line,
                hashlib.sha256(canonical).hexdigest().encode(),
            )
        )
        expected = hmac.digest(scope.signing_key, string_to_sign, "sha256").hex()
        if not hmac.compare_digest(expected, signature):
            _fail("signature mismatch")
        return scope.verified

    def _cached(self, header: bytes | None) -> tuple[_Scope, str] | None:
        """The checked scope and the signature if ``header`` differs from one
        parsed before only in its signature; else None.

        Parsing is a function of the header text alone, and a header that
        matches a cached one outside a 64-hex-digit signature parses to the
        same fields with that signature; any other header is parsed whole.
        The entry is used only while its access key id still maps to the
        same secret (``set_credentials`` also empties the cache).
        """
        cut = _without_signature(header)
        if cut is None:
            return None
        scope = self._parsed.get(cut[0])
        if scope is None or self._secrets.get(scope.access_key_id) is not scope.secret:
            return None
        return scope, cut[1]

    def _parse(self, values: list[bytes] | None) -> tuple[_Scope, str]:
        """The whole parse and check of the header; remembered for the day."""
        auth = _parse_authorization(values)
        secret = self._check_scope(auth)
        signed = _signed_header_names(auth.signed_headers)
        key = self._signing_key(secret, auth.date, auth.region)
        scope = _Scope(auth, signed, secret, key)
        cut = _without_signature(values[0]) if values and len(values) == 1 else None
        if cut is not None:
            if len(self._parsed) >= _PARSED_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[cut[0]] = scope
        return scope, auth.signature

    def _check_scope(self, auth: _Authorization) -> Secret:
        if auth.service != SERVICE:
            _fail(f"credential scope service is {auth.service!r}")
        if self._region is not None and auth.region != self._region:
            _fail(f"credential scope region is {auth.region!r}")
        secret = self._secrets.get(auth.access_key_id)
        if secret is None:
            _fail(f"unknown access key id {auth.access_key_id!r}")
        return secret

    def _checked_date(
        self,
        collected: dict[bytes, bytes],
        repeats: dict[bytes, list[bytes]],
        scope_date: str,
        now: float,
    ) -> bytes:
        """x-amz-date, checked against the scope date and the clock (Task 4).

        Requests of one second share their x-amz-date, so the last one that
        passed the format and scope-date checks is remembered with its time.
        """
        amz_date = _one(collected, repeats, b"x-amz-date", "x-amz-date")
        last = self._last_date
        if last[0] == amz_date and last[1] == scope_date:
            stamp = last[2]
        else:
            match = _AMZ_DATE.fullmatch(amz_date)
            if match is None:
                _fail("x-amz-date is not YYYYMMDDTHHMMSSZ")
            if match.group(1) != scope_date.encode():
                _fail("credential scope date differs from x-amz-date")
            stamp = _unix_time(amz_date)
            self._last_date = (amz_date, scope_date, stamp)
        skew = stamp - now
        if abs(skew) > self._max_skew:
            _fail(f"x-amz-date is {skew:+.0f} s from our clock")
        return amz_date

    def _signing_key(self, secret: Secret, date: str, region: str) -> bytes:
        # Four chained HMACs per (secret, date, region); cached, since KMS
        # sends thousands of requests a second under one scope.
        cache_key = (secret.reveal(), date, region)
        key = self._signing_keys.get(cache_key)
        if key is None:
            key = _derive_signing_key(secret.reveal(), date, region)
            if len(self._signing_keys) >= _SIGNING_KEY_CACHE_SIZE:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = key
        return key

    def __repr__(self) -> str:
        return (
            f"SigV4Verifier(access_key_ids={sorted(self._secrets)!r},"
            f" region={self._region!r})"
        )


def _unix_time(amz_date: bytes) -> float:
    d = amz_date  # YYYYMMDDTHHMMSSZ, digits checked by _amz_date
    try:
        stamp = datetime(
            int(d[0:4]), int(d[4:6]), int(d[6:8]),
            int(d[9:11]), int(d[11:13]), int(d[13:15]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        _fail("x-amz-date is not a valid time")
    return stamp.timestamp()


def _without_signature(raw: bytes | None) -> tuple[bytes, str] | None:
    """The header with its 64-hex-digit signature cut out, and the signature;
    None for anything else (the whole parse then decides)."""
    if raw is None:
        return None
    start = raw.find(_SIGNATURE_FIELD) + len(_SIGNATURE_FIELD)
    signature = raw[start : start + 64]
    if start < len(_SIGNATURE_FIELD) or not _SIGNATURE_HEX.fullmatch(signature):
        return None
    return raw[:start] + raw[start + 64 :], signature.decode()


def _derive_signing_key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, SERVICE, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _collect(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[dict[bytes, bytes], dict[bytes, list[bytes]]]:
    """Headers by lower-case name: the first value of each, and every value
    of the names that repeat (usually none).

    One pass and no list per header in the common case of no repeats: the
    count of names tells whether any repeat.
    """
    pairs = headers if isinstance(headers, tuple | list) else tuple(headers)
    collected: dict[bytes, bytes] = {}
    for name, value in pairs:
        collected[name.lower()] = value
    if len(collected) == len(pairs):
        return collected, {}
    collected = {}
    repeats: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        name = name.lower()
        if name in collected:
            repeats.setdefault(name, [collected[name]]).append(value)
        else:
            collected[name] = value
    return collected, repeats


def _one(
    collected: dict[bytes, bytes],
    repeats: dict[bytes, list[bytes]],
    key: bytes,
    name: str,
) -> bytes:
    """The one value of header ``key``; missing or repeated fails."""
    value = collected.get(key)
    if value is None:
        _fail(f"no {name} header")
    if repeats and key in repeats:
        _fail(f"{len(repeats[key])} {name} headers")
    return value


def _single(values: list[bytes] | None, name: str) -> bytes:
    if values is None:
        _fail(f"no {name} header")
    if len(values) != 1:
        _fail(f"{len(values)} {name} headers")
    return values[0]


def _parse_authorization(values: list[bytes] | None) -> _Authorization:
    try:
        header = _single(values, "authorization").decode("ascii")
    except UnicodeDecodeError:
        _fail("authorization header is not ASCII")
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        _fail("authorization algorithm is not AWS4-HMAC-SHA256")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.strip().partition("=")
        if not eq or key in fields:
            _fail("authorization header is malformed")
        fields[key] = value
    if fields.keys() != {"Credential", "SignedHeaders", "Signature"}:
        _fail("authorization header lacks or adds components")
    return _authorization(fields)


def _authorization(fields: dict[str, str]) -> _Authorization:
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != TERMINATOR:
        _fail("credential scope is malformed")
    access_key_id, date, region, service, _ = scope
    if not _SCOPE_DATE.fullmatch(date) or not region:
        _fail("credential scope date or region is malformed")
    signature = fields["Signature"]
    if not _SIGNATURE.fullmatch(signature):
        _fail("signature is not 64 lowercase hex digits")
    return _Authorization(
        access_key_id, date, region, service, fields["SignedHeaders"], signature
    )


def _signed_header_names(signed_headers: str) -> list[str]:
    names = signed_headers.split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in names):
        _fail("SignedHeaders holds an invalid header name")
    # SigV4 lists signed headers sorted and once each; a client that did not
    # could not have produced a signature a conforming verifier accepts.
    if names != sorted(set(names)):
        _fail("SignedHeaders is not sorted and unique")
    if not REQUIRED_SIGNED_HEADERS.issubset(names):
        _fail("host and x-amz-date must both be signed")
    return names


def _payload_hash(
    body: bytes, collected: dict[bytes, bytes], repeats: dict[bytes, list[bytes]]
) -> bytes:
    digest = hashlib.sha256(body).hexdigest().encode()
    if b"x-amz-content-sha256" in collected:
        declared = _one(
            collected, repeats, b"x-amz-content-sha256", "x-amz-content-sha256"
        )
        if declared != digest:
            _fail("x-amz-content-sha256 does not match the body")
    return digest


def _canonical_request(
    method: str,
    path: str,
    scope: _Scope,
    collected: dict[bytes, bytes],
    repeats: dict[bytes, list[bytes]],
    payload_hash: bytes,
) -> bytes:
    lines = [method.encode(), _canonical_uri_bytes(path), b""]
    for name, prefix in scope.signed:
        key = prefix[:-1]
        value = collected.get(key)
        if value is None:
            _fail(f"signed header {name} is missing")
        # Trimall: strip, and fold inner whitespace runs to one space.
        if repeats and key in repeats:
            lines.append(prefix + b",".join(b" ".join(v.split()) for v in repeats[key]))
        else:
            lines.append(prefix + b" ".join(value.split()))
    lines.append(b"")
    lines.append(scope.signed_line)
    lines.append(payload_hash)
    return b"\n".join(lines)


_URI_CACHE: dict[str, bytes] = {}
# Paths are a keystore's few key URIs; the bound only stops a flood of
# distinct paths from growing the cache. Chosen without measuring.
_URI_CACHE_SIZE = 256


def _canonical_uri_bytes(path: str) -> bytes:
    """``canonical_uri(path)`` encoded, remembered per path."""
    uri = _URI_CACHE.get(path)
    if uri is None:
        uri = canonical_uri(path).encode()
        if len(_URI_CACHE) >= _URI_CACHE_SIZE:
            _URI_CACHE.clear()
        _URI_CACHE[path] = uri
    return uri


def canonical_uri(path: str) -> str:
    """The SigV4 CanonicalURI of a raw path, as botocore computes it."""
    if _PLAIN_PATH.fullmatch(path):
        return path  # nothing to remove or encode: the XKS case
    if not path:
        return "/"
    return quote(_remove_dot_segments(path), safe="/~")


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 section 5.2.4, plus dropping empty segments as AWS does.
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and kept else ""
    return lead + "/".join(kept) + trail
