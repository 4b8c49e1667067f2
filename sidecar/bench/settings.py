"""The settings of a run, from the command line, a TOML file and the environment.

Every setting has one name, used alike as ``--long-option`` (dashes), as a
TOML key (underscores) and in the JSON report. Precedence: command line,
then the ``--config`` file, then the environment (only where an option names
a variable), then the default. Paths in the TOML file are relative to it.

The SigV4 secret access key never comes from the command line (it would show
in ``ps`` and shell history): it is read from ``secret_file``, or else from
the environment variable named by ``secret_env``. A TOML file holding a
``secret`` key is refused for the same reason.
"""

from __future__ import annotations

import argparse
import logging
import math
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sidecar.bench.mix import DEFAULT_MIX, parse_mix
from sidecar.bench.payloads import Operation
from sidecar.xks.sigv4 import Secret

SECRET_ENV_DEFAULT = "XKS_BENCH_SECRET_ACCESS_KEY"  # noqa: S105 (a variable name)
# KMS's default request quota for one external key store.
KMS_DEFAULT_RATE = 1800.0

_log = logging.getLogger(__name__)


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it and the fix."""


@dataclass(frozen=True)
class Option:
    name: str
    kind: type
    default: object
    help: str
    env: str | None = None


OPTIONS = (
    Option("endpoint", str, None, "proxy endpoint, https://host[:port]"),
    Option("uri_path", str, "/kms/xks/v1", "XksProxyUriPath, e.g. /dev/kms/xks/v1"),
    Option("key_id", str, None, "external key id to encrypt and decrypt with"),
    Option("target_rate", float, KMS_DEFAULT_RATE, "verdict: ok answers/s to reach"),
    Option("rate", float, None, "requests per second sent (default: target_rate)"),
    Option("duration", float, 60.0, "seconds of timed load"),
    Option("warmup", int, 200, "Encrypts made before the run, to decrypt in it"),
    Option("connections", int, 32, "keep-alive TLS connections"),
    Option("mix", str, DEFAULT_MIX, "operation weights, e.g. encrypt=60,decrypt=40"),
    Option("ca_file", Path, None, "CA bundle to trust (default: system store)"),
    Option("client_cert", Path, None, "client certificate (chain) for mTLS"),
    Option("client_key", Path, None, "client private key for mTLS"),
    Option(
        "server_name", str, None, "SNI and certificate name (default: endpoint host)"
    ),
    Option(
        "access_key_id", str, None, "SigV4 access key id", "XKS_BENCH_ACCESS_KEY_ID"
    ),
    Option("secret_file", Path, None, "file holding the SigV4 secret access key"),
    Option("secret_env", str, SECRET_ENV_DEFAULT, "variable holding the secret"),
    Option("region", str, "us-east-1", "SigV4 region", "XKS_BENCH_REGION"),
    Option("timeout_ms", float, 250.0, "slower answers are timeouts (KMS: 250)"),
    Option("give_up_ms", float, 1000.0, "stop waiting for an answer after this"),
    Option(
        "max_outstanding",
        int,
        None,
        "cap on queued+in-flight (default: rate*give_up+connections)",
    ),
    Option("latency_budget_ms", float, 250.0, "verdict: p99 must be at most this"),
    Option("tight_budget_ms", float, 50.0, "also report p99 against this budget"),
    Option("max_error_rate", float, 0.001, "verdict: at most this fraction not ok"),
    Option(
        "principal_arn",
        str,
        "arn:aws:iam::111122223333:role/xks-bench",
        "awsPrincipalArn sent",
    ),
    Option("kms_key_arn", str, None, "kmsKeyArn sent (default: a dummy ARN in region)"),
    Option("cdiv", bool, True, "ask Encrypts for a CDIV and check it"),
    Option("pool_size", int, 512, "distinct bodies per operation"),
    Option("json", Path, None, "also write the report as JSON to this path"),
    Option("progress", bool, True, "a status line on stderr every second"),
)
_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class BenchSettings:
    endpoint: str
    uri_path: str
    key_id: str
    target_rate: float
    rate: float
    duration: float
    warmup: int
    connections: int
    mix: dict[Operation, int]
    ca_file: Path | None
    client_cert: Path | None
    client_key: Path | None
    server_name: str
    access_key_id: str
    secret: Secret
    region: str
    timeout_ms: float
    give_up_ms: float
    max_outstanding: int
    latency_budget_ms: float
    tight_budget_ms: float
    max_error_rate: float
    principal_arn: str
    kms_key_arn: str
    cdiv: bool
    pool_size: int
    json: Path | None
    progress: bool

    @property
    def connect_host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def connect_port(self) -> int:
        return urlsplit(self.endpoint).port or 443


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per setting; all default to "not given" (None)."""
    parser.add_argument("--config", type=Path, help="TOML file with these settings")
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        text = f"{option.help} (default: {option.default})"
        if option.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(flag, type=option.kind, help=text)


def resolve(
    given: Mapping[str, Any], config: Path | None, environ: Mapping[str, str]
) -> BenchSettings:
    """Merge command line, TOML file, environment and defaults; validate."""
    from_file = _read_config(config) if config is not None else {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        values[option.name] = _pick(option, given, from_file, environ)
    return _build(values, environ)


def _pick(
    option: Option,
    given: Mapping[str, Any],
    from_file: Mapping[str, Any],
    environ: Mapping[str, str],
) -> Any:
    if given.get(option.name) is not None:
        return given[option.name]
    if option.name in from_file:
        return from_file[option.name]
    if option.env is not None and environ.get(option.env):
        return _convert(option, environ[option.env], f"${option.env}")
    return option.default


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read TOML: {exc}") from exc
    if "secret" in raw or "secret_access_key" in raw:
        raise SettingsError(
            f"{path}: holds a secret; put it in a file and set secret_file, "
            "or in the environment and set secret_env"
        )
    values = {}
    for key, value in raw.items():
        option = _BY_NAME.get(key)
        if option is None:
            raise SettingsError(
                f"{path}: unknown key {key!r} (known: {', '.join(_BY_NAME)})"
            )
        values[key] = _from_toml(option, value, path)
    return values


def _from_toml(option: Option, value: object, path: Path) -> object:
    where = f"{path}: key {option.name!r}"
    if option.kind is Path:
        if not isinstance(value, str):
            raise SettingsError(f"{where} must be a path string")
        return (path.parent / value).resolve()
    if option.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, option.kind) or (
        option.kind is int and isinstance(value, bool)
    ):
        raise SettingsError(f"{where} must be of type {option.kind.__name__}")
    return value


def _convert(option: Option, text: str, where: str) -> object:
    try:
        return option.kind(text)
    except ValueError as exc:
        raise SettingsError(f"{where}: not a valid {option.name}: {text!r}") from exc


def _build(values: dict[str, Any], environ: Mapping[str, str]) -> BenchSettings:
    for name in ("endpoint", "key_id", "access_key_id"):
        if not values[name]:
            flag = "--" + name.replace("_", "-")
            raise SettingsError(
                f"{name} is required: pass {flag} or set it in --config"
            )
    endpoint = _check_endpoint(values["endpoint"])
    values["server_name"] = values["server_name"] or urlsplit(endpoint).hostname
    values["mix"] = _mix(values["mix"])
    values["rate"] = values["rate"] or values["target_rate"]
    values["secret"] = _secret(
        values.pop("secret_file"), values.pop("secret_env"), environ
    )
    values["kms_key_arn"] = values["kms_key_arn"] or (
        f"arn:aws:kms:{values['region']}:111122223333:key/"
        "00000000-0000-4000-8000-000000000000"
    )
    if values["max_outstanding"] is None:
        extra = math.ceil(values["rate"] * values["give_up_ms"] / 1000)
        values["max_outstanding"] = extra + values["connections"]
    _check_ranges(values)
    return BenchSettings(**values)


def _check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsError(
            f"endpoint {endpoint!r} must be https://host[:port] without a path; "
            "the path goes into uri_path"
        )
    return endpoint


def _mix(text: str) -> dict[Operation, int]:
    try:
        return parse_mix(text)
    except ValueError as exc:
        raise SettingsError(f"mix: {exc}") from exc


def _secret(path: Path | None, env: str, environ: Mapping[str, str]) -> Secret:
    if path is not None:
        return _secret_from_file(path)
    value = environ.get(env, "")
    if not value:
        raise SettingsError(
            f"no SigV4 secret: set secret_file, or put the secret in ${env} "
            "(secrets are never taken from the command line)"
        )
    return Secret(value)


def _secret_from_file(path: Path) -> Secret:
    try:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Not refused: the operator may have reasons; but worth a word.
            _log.warning("secret_file %s is readable by group or others", path)
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"secret_file {path}: cannot read: {exc}") from exc
    if not text:
        raise SettingsError(f"secret_file {path} is empty")
    return Secret(text)


def _check_ranges(values: Mapping[str, Any]) -> None:
    positive = (
        "target_rate", "rate", "duration", "connections", "timeout_ms",
        "pool_size", "max_outstanding", "latency_budget_ms", "tight_budget_ms",
    )  # fmt: skip
    for name in positive:
        if not values[name] > 0:
            raise SettingsError(f"{name} must be greater than 0 (got {values[name]})")
    if values["warmup"] < 0:
        raise SettingsError("warmup must not be negative")
    if values["give_up_ms"] < values["timeout_ms"]:
        raise SettingsError("give_up_ms must be at least timeout_ms")
    if not 0 <= values["max_error_rate"] <= 1:
        raise SettingsError("max_error_rate is a fraction between 0 and 1")
    if Operation.DECRYPT in values["mix"] and values["warmup"] == 0:
        raise SettingsError("the mix has decrypts: warmup must make some ciphertexts")
