"""Typed settings of the PKCS#11 backend.

The sidecar's configuration module maps TOML onto ``Pkcs11Settings`` (the
PIN read through ``pin.py``); the backend only consumes it. Every value is
checked here, once: ``Pkcs11ConfigError`` names the setting and the fix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from sidecar.backends.pkcs11.labels import check_external_key_id
from sidecar.backends.pkcs11.pin import Pin


class Pkcs11ConfigError(ValueError):
    """A PKCS#11 backend setting is unusable."""


class IvSource(enum.StrEnum):
    """Who draws the 12-byte AES-GCM IV (docs/backend-pkcs11.md, IV source).

    RANDOM: the sidecar asks the token for 12 random bytes (C_GenerateRandom)
    and passes them in CK_GCM_PARAMS; works on every token that accepts a
    caller's IV, SoftHSMv2 included. TOKEN: the token writes an IV of its own
    into CK_GCM_PARAMS.pIv (what FIPS-mode HSMs that refuse caller IVs do);
    an IV left all zero means the token did not, and the encryption is
    refused rather than returned.
    """

    RANDOM = "random"
    TOKEN = "token"  # noqa: S105 (an IV source, not a password)


class KeyIdAttribute(enum.StrEnum):
    """The attribute that carries the external key id (and version suffix)."""

    LABEL = "label"  # CKA_LABEL, UTF-8 text
    ID = "id"  # CKA_ID, the same text as UTF-8 bytes


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    """One PKCS#11 token and how the backend uses it."""

    module_path: Path  # the PKCS#11 library, e.g. libfxpkcs11.so
    user_pin: Pin  # the normal user's PIN; masked in every repr
    # The token, by label or by serial number: exactly one of the two.
    token_label: str | None = None
    token_serial: str | None = None
    # Logged-in sessions, and so worker threads: one PKCS#11 call each at a
    # time. Chosen, not measured: enough to overlap a network HSM's round
    # trips on a two-core host.
    pool_size: int = 4
    # The bound on one backend call, waiting for a session included. KMS
    # gives the whole XKS request 250 ms (spec, GetKeyMetadata, KMS
    # Considerations); 150 ms leaves the rest for TLS, HTTP and our own work.
    call_timeout_s: float = 0.150
    iv_source: IvSource = IvSource.RANDOM
    key_id_attribute: KeyIdAttribute = KeyIdAttribute.LABEL
    # Checked to exist at start-up, so a missing test key is reported before
    # the first health check fails on it.
    health_key_id: str = "xks-health-check"
    # describe_key answers from a cache this fresh (backends/describe_cache.py says
    # why); it also bounds how long a rotation takes to reach Encrypt.
    describe_cache_ttl_s: float = 1.0
    # The deep health probe: its bound, and above what it counts as DEGRADED
    # (the same meaning as the CryptoHub backend's settings of these names).
    health_timeout_s: float = 1.0
    health_slow_s: float = 0.150
    # How long aclose waits for worker threads still inside the module
    # before finalising it; past it the module is left initialised.
    close_timeout_s: float = 5.0
    # Environment variables the module reads when loaded (FXPKCS11_CFG for
    # Futurex, SOFTHSM2_CONF for SoftHSMv2), set before it is loaded.
    module_environment: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.token_label is None) == (self.token_serial is None):
            raise Pkcs11ConfigError("set token_label or token_serial, exactly one")
        if not 1 <= self.pool_size <= 256:
            raise Pkcs11ConfigError("pool_size must be 1 to 256")
        for name in ("call_timeout_s", "health_timeout_s", "health_slow_s"):
            if not getattr(self, name) > 0:
                raise Pkcs11ConfigError(f"{name} must be above 0")
        if self.describe_cache_ttl_s < 0 or self.close_timeout_s < 0:
            raise Pkcs11ConfigError("durations must not be negative")
        try:
            check_external_key_id(self.health_key_id)
        except ValueError as exc:
            raise Pkcs11ConfigError(f"health_key_id: {exc}") from exc

    @property
    def token_name(self) -> str:
        """The token as configured: its label, or its serial number."""
        return self.token_label or self.token_serial or ""
