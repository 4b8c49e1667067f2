"""``[[keystore]]``: one external key store each, as KMS knows it.

A keystore is what KMS calls an external key store: an ``XksProxyUriPath``
(the full path, ``[/<prefix>]/kms/xks/v1``), the SigV4 credentials KMS signs
with, the AWS region KMS calls from, the backend holding its keys, and an
optional secondary-authorization policy (spec, "Authorization").

Several credentials per keystore are how SigV4 credentials are rotated
without a failed request (spec, "SigV4 credentials rotation"): add the new
pair, update KMS, then remove the old pair. The secret of each comes from a
file or an environment variable (``config_secrets``).

``max_requests_per_second`` (and ``burst``) give the keystore a request
quota (spec, "API operations": a proxy MAY implement independent request
quotas on each path prefix); ``sidecar.throttle`` enforces it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sidecar.config_reader import Table
from sidecar.config_secrets import read_secret
from sidecar.throttle import Quota
from sidecar.xks.policy import Policy, policy_from_mapping
from sidecar.xks.routes import validate_uri_path
from sidecar.xks.sigv4 import Credential, Secret, kms_format_problems

# AWS region names: "us-east-1", "eu-central-2", "us-gov-west-1", ...
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Far above what one HSM cluster serves (KMS's default external key store
# limit is 1,800 a second, spec, GetHealthStatus); the bound catches typos.
_MAX_RATE = 1_000_000


@dataclass(frozen=True, slots=True)
class KeystoreSettings:
    name: str
    uri_path: str  # XksProxyUriPath, ending in /kms/xks/v1
    region: str
    backend: str  # the name of a [backend.<name>] table
    credentials: tuple[Credential, ...] = field(repr=False)
    policy: Policy = field(default_factory=Policy)
    # Ways the credentials break KMS's own format rules (Appendix A); KMS
    # would refuse them, so `check-config` and start-up warn about each.
    kms_format_warnings: tuple[str, ...] = ()
    quota: Quota | None = None  # None: no request quota


def keystore_settings(
    top: Table, backends: Mapping[str, object], env: Mapping[str, str]
) -> tuple[KeystoreSettings, ...]:
    """Every ``[[keystore]]`` entry; at least one, names and paths unique."""
    keystores = tuple(_keystore(t, backends, env) for t in top.tables("keystore"))
    if not keystores:
        raise top.error("keystore", "missing; add at least one [[keystore]] table")
    _require_unique(top, [k.name for k in keystores], "keystore names")
    _require_unique(top, [k.uri_path for k in keystores], "keystore uri_paths")
    _require_unique(
        top,
        [c.access_key_id for k in keystores for c in k.credentials],
        "access key ids (across keystores; each names one secret)",
    )
    return keystores


def _keystore(
    table: Table, backends: Mapping[str, object], env: Mapping[str, str]
) -> KeystoreSettings:
    name = _name(table)
    backend = table.text("backend")
    if backend not in backends:
        raise table.error(
            "backend", f"no [backend.{backend}] table; known: {sorted(backends)}"
        )
    credentials = tuple(_credential(c, env) for c in table.tables("credential"))
    if not credentials:
        raise table.error(
            "credential", "missing; add a [[keystore.credential]] table with the"
            " access key id and secret KMS signs with",
        )  # fmt: skip
    settings = KeystoreSettings(
        name=name,
        uri_path=_uri_path(table),
        region=_region(table),
        backend=backend,
        credentials=credentials,
        policy=_policy(table.table("policy")),
        kms_format_warnings=_format_warnings(name, credentials),
        quota=_quota(table),
    )
    table.finish()
    return settings


def _name(table: Table) -> str:
    name = table.text("name")
    if not _NAME.fullmatch(name):
        raise table.error("name", "must be 1-64 of A-Z a-z 0-9 _ . -")
    return name


def _uri_path(table: Table) -> str:
    uri_path = table.text("uri_path")
    try:
        return validate_uri_path(uri_path)
    except ValueError as exc:
        raise table.error("uri_path", f"{exc} (e.g. /tenant-a/kms/xks/v1)") from exc


def _region(table: Table) -> str:
    region = table.text("region")
    if not _REGION.fullmatch(region):
        raise table.error("region", f"{region!r} is not an AWS region (us-east-1)")
    return region


def _quota(table: Table) -> Quota | None:
    # Whole requests a second: finer rates protect nothing a proxy needs.
    rate = table.optional_integer("max_requests_per_second", 1, _MAX_RATE)
    if rate is None:
        if table.has("burst"):
            raise table.error("burst", "needs max_requests_per_second; set both")
        return None
    # Default burst: one second's worth, so a client sending at the quota in
    # whole-second bursts is never refused.
    burst = table.integer("burst", rate, 1, _MAX_RATE)
    return Quota(float(rate), float(burst))


def _credential(table: Table, env: Mapping[str, str]) -> Credential:
    access_key_id = table.text("access_key_id")
    secret = read_secret(table, "secret_access_key", env)
    table.finish()
    try:
        return Credential(access_key_id, Secret(secret))
    except ValueError as exc:
        raise table.error("access_key_id", str(exc)) from exc


def _policy(table: Table) -> Policy:
    if table.is_empty:
        return Policy()  # no policy: every authenticated request is allowed
    default = table.text("default", "deny")
    rules = [rule.raw() for rule in table.tables("rule")]
    table.finish()
    try:
        return policy_from_mapping(default, rules)
    except ValueError as exc:
        raise table.error(None, f"{exc}; see docs/configuration.md") from exc


def _format_warnings(name: str, credentials: tuple[Credential, ...]) -> tuple[str, ...]:
    return tuple(
        f"keystore {name!r}, access key id {c.access_key_id}: {problem}"
        for c in credentials
        for problem in kms_format_problems(c)
    )


def _require_unique(table: Table, values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise table.error("keystore", f"{what} must be unique; {value!r} repeats")
        seen.add(value)
