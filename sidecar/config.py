"""The sidecar's configuration: one TOML file, read and checked once.

``load_config(path)`` turns the file into frozen, typed settings or raises
``ConfigError`` naming the file, the key and the fix, so a bad setting stops
the sidecar at start-up instead of surfacing as a strange failure under
load. This package is the only place that reads files at start-up (the
configuration, the SigV4 secrets); the data plane and the backends are handed
paths that have been checked here.

Tables (docs/configuration.md documents every key, with an example)::

    [server]             the XKS listener: address, TLS, mTLS, limits, ping port
    [[keystore]]         one per external key store: uri_path, region, backend,
                         [[keystore.credential]] and an optional [keystore.policy]
    [backend.<name>]     a key manager (kind = "cryptohub") and its nodes
    [health]             the background deep health check and what it reports
    [logging]            level and format of the log on stderr

Secrets are never inline: see ``config_secrets``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.config_backends import BackendSettings, backend_settings
from sidecar.config_keystores import KeystoreSettings, keystore_settings
from sidecar.config_reader import ConfigError, Table
from sidecar.config_server import ServerSettings, server_settings

__all__ = [
    "BackendSettings",
    "ConfigError",
    "HealthSettings",
    "KeystoreSettings",
    "LoggingSettings",
    "ServerSettings",
    "SidecarConfig",
    "load_config",
]

# Spec, GetHealthStatus, KMS Considerations: a cached health result "MUST not
# be older than one minute".
MAX_HEALTH_AGE_S = 60.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """The deep health check (``sidecar.health``) and the GetHealthStatus text."""

    key_id: str = "xks-health-check"  # a test key, never a customer's (spec)
    interval_s: float = 5.0
    max_age_s: float = MAX_HEALTH_AGE_S
    vendor: str = "Futurex"  # xksProxyVendor
    model: str = "CryptoHub"  # xksProxyModel
    ekm_vendor: str = "Futurex"  # ekmVendor
    fleet_size: int = 1  # xksProxyFleetSize: sidecars serving this endpoint


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "json"
    # The per-request line (logger sidecar.audit) is written at INFO even when
    # ``level`` is higher: it is the audit trail, not chatter.
    audit: bool = True


@dataclass(frozen=True, slots=True)
class SidecarConfig:
    source: Path
    server: ServerSettings
    keystores: tuple[KeystoreSettings, ...]
    backends: Mapping[str, BackendSettings]
    health: HealthSettings = field(default_factory=HealthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    def keystore(self, name: str) -> KeystoreSettings:
        for keystore in self.keystores:
            if keystore.name == name:
                return keystore
        raise KeyError(name)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> SidecarConfig:
    """Read and validate the configuration at ``path``.

    ``env`` (default ``os.environ``) is where ``*_env`` secrets are looked up.
    """
    top = Table(path, "", _read_toml(path))
    environ = os.environ if env is None else env
    backends = backend_settings(top, environ)
    keystores = keystore_settings(top, backends, environ)
    _require_all_used(top, backends, keystores)
    config = SidecarConfig(
        source=path,
        server=server_settings(top.table("server"), _common_region(keystores)),
        keystores=keystores,
        backends=backends,
        health=_health(top.table("health")),
        logging=_logging(top.table("logging")),
    )
    top.finish()
    return config


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such configuration file; pass --config with the path"
            " of a sidecar.toml (see fixtures/dev/sidecar.toml)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _common_region(keystores: tuple[KeystoreSettings, ...]) -> str | None:
    regions = {keystore.region for keystore in keystores}
    return regions.pop() if len(regions) == 1 else None


def _require_all_used(
    top: Table,
    backends: Mapping[str, BackendSettings],
    keystores: tuple[KeystoreSettings, ...],
) -> None:
    # An unused backend would still be connected to and health-checked.
    unused = set(backends) - {keystore.backend for keystore in keystores}
    if unused:
        name = sorted(unused)[0]
        raise top.error(f"backend.{name}", "no keystore uses this backend; remove it")


def _health(table: Table) -> HealthSettings:
    d = HealthSettings()
    max_age = table.seconds("max_age_s", d.max_age_s, high=MAX_HEALTH_AGE_S)
    interval = table.seconds("interval_s", d.interval_s, high=MAX_HEALTH_AGE_S)
    if interval >= max_age:
        raise table.error(
            "interval_s", f"must be below max_age_s ({max_age:g}), or every"
            " cached result would go stale before the next check",
        )  # fmt: skip
    settings = HealthSettings(
        key_id=table.text("key_id", d.key_id),
        interval_s=interval,
        max_age_s=max_age,
        vendor=table.text("vendor", d.vendor),
        model=table.text("model", d.model),
        ekm_vendor=table.text("ekm_vendor", d.ekm_vendor),
        fleet_size=table.integer("fleet_size", d.fleet_size, 1, 1_000_000),
    )
    table.finish()
    return settings


def _logging(table: Table) -> LoggingSettings:
    settings = LoggingSettings(
        level=table.choice("level", "INFO", LOG_LEVELS),
        format=table.choice("format", "json", LOG_FORMATS),
        audit=table.boolean("audit", True),
    )
    table.finish()
    return settings
