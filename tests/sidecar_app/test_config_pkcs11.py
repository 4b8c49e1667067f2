"""``[backend.<name>] kind = "pkcs11"``: TOML onto Pkcs11Settings, and its errors.

docs/configuration.md and docs/backend-pkcs11.md ("Settings") list the keys.
Nothing here loads a PKCS#11 module: the configuration only checks that the
library file exists, so a placeholder file stands in for it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.backends.pkcs11 import IvSource, KeyIdAttribute, Pkcs11Settings
from sidecar.config import ConfigError, SidecarConfig, load_config
from sidecar.config_backends import BackendSettings
from tests.sidecar_app.conftest import ConfigFile, private_file, q

PIN = "user-pin-for-a-test-token"


@dataclass
class Pkcs11File:
    """The shared valid config with its backend swapped for a pkcs11 one."""

    config: ConfigFile
    module: Path
    pin_file: Path

    def write(self, *lines: str, table: str = "") -> Path:
        """The config with ``lines`` added to the backend table, ``table`` after."""
        head = self.config.text[: self.config.text.index("[backend.hub]")]
        backend = "\n".join(
            [
                "[backend.hub]",
                'kind = "pkcs11"',
                f"module = {q(self.module)}",
                *lines,
            ]
        )
        return self.config.write(f"{head}{backend}\n{table}")

    def valid(self, *lines: str, table: str = "") -> Path:
        """As ``write``, with a token label and the PIN file unless ``lines``
        already name a token or a PIN source."""
        named = "\n".join(lines)
        token = [] if "token_" in named else ['token_label = "xks"']
        pin = [] if "user_pin" in named else [f"user_pin_file = {q(self.pin_file)}"]
        return self.write(*token, *pin, *lines, table=table)


@pytest.fixture
def pkcs11_file(config_file: ConfigFile, tmp_path: Path) -> Pkcs11File:
    module = tmp_path / "libplaceholder-pkcs11.so"
    module.write_bytes(b"")
    pin_file = private_file(tmp_path / "user.pin", PIN)
    return Pkcs11File(config_file, module, pin_file)


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    message = str(caught.value)
    assert str(path) in message, "every error names the file"
    return message


def backend(config: SidecarConfig) -> tuple[BackendSettings, Pkcs11Settings]:
    hub = config.backends["hub"]
    assert isinstance(hub.settings, Pkcs11Settings)
    return hub, hub.settings


def test_minimal_table_maps_onto_the_documented_defaults(
    pkcs11_file: Pkcs11File,
) -> None:
    hub, settings = backend(load_config(pkcs11_file.valid(), {}))

    assert hub.kind == "pkcs11"
    assert settings.module_path == pkcs11_file.module
    assert (settings.token_label, settings.token_serial) == ("xks", None)
    assert settings.user_pin.reveal() == PIN
    assert settings.pool_size == 4
    assert settings.call_timeout_s == pytest.approx(0.150)
    assert settings.iv_source is IvSource.RANDOM
    assert settings.key_id_attribute is KeyIdAttribute.LABEL
    assert settings.health_key_id == "xks-health-check"
    assert settings.describe_cache_ttl_s == pytest.approx(1.0)
    assert settings.module_environment == ()


def test_every_setting_is_read_in_its_unit(pkcs11_file: Pkcs11File) -> None:
    path = pkcs11_file.valid(
        "pool_size = 8",
        "timeout_ms = 90",
        'iv_source = "token"',
        'key_id_attribute = "id"',
        'health_key_id = "probe-key"',
        "describe_cache_ttl_ms = 0",
        "health_timeout_ms = 700",
        "health_slow_ms = 120",
        "close_timeout_ms = 2500",
    )

    _, settings = backend(load_config(path, {}))

    assert settings.pool_size == 8
    assert settings.call_timeout_s == pytest.approx(0.090)
    assert settings.iv_source is IvSource.TOKEN
    assert settings.key_id_attribute is KeyIdAttribute.ID
    assert settings.health_key_id == "probe-key"
    assert settings.describe_cache_ttl_s == 0
    assert settings.health_timeout_s == pytest.approx(0.7)
    assert settings.health_slow_s == pytest.approx(0.12)
    assert settings.close_timeout_s == pytest.approx(2.5)


def test_health_reports_the_token_under_its_configured_name(
    pkcs11_file: Pkcs11File,
) -> None:
    by_label, _ = backend(load_config(pkcs11_file.valid(), {}))
    by_serial, _ = backend(
        load_config(pkcs11_file.valid('token_serial = "5a1e0c2d"'), {})
    )

    assert by_label.node_names == ("xks",)
    assert by_serial.node_names == ("5a1e0c2d",)


def test_pin_comes_from_the_environment(
    pkcs11_file: Pkcs11File, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XKS_TOKEN_PIN", "pin-from-env")
    path = pkcs11_file.valid('user_pin_env = "XKS_TOKEN_PIN"')

    _, settings = backend(load_config(path))

    assert settings.user_pin.reveal() == "pin-from-env"


def test_unset_pin_variable_is_named(
    pkcs11_file: Pkcs11File, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XKS_TOKEN_PIN", raising=False)

    message = load_error(pkcs11_file.valid('user_pin_env = "XKS_TOKEN_PIN"'))

    assert "[backend.hub] user_pin_env" in message
    assert "XKS_TOKEN_PIN is unset" in message


def test_pin_file_open_to_the_group_is_refused(pkcs11_file: Pkcs11File) -> None:
    os.chmod(pkcs11_file.pin_file, 0o640)

    message = load_error(pkcs11_file.valid())

    assert "[backend.hub] user_pin_file" in message
    assert f"chmod 600 {pkcs11_file.pin_file}" in message
    assert PIN not in message


def test_inline_pin_is_refused_without_echoing_it(pkcs11_file: Pkcs11File) -> None:
    message = load_error(pkcs11_file.valid('user_pin = "1234-inline"'))

    assert "[backend.hub] user_pin:" in message
    assert "user_pin_file" in message
    assert "1234-inline" not in message


def test_missing_pin_says_where_one_may_come_from(pkcs11_file: Pkcs11File) -> None:
    message = load_error(pkcs11_file.write('token_label = "xks"'))

    assert "add user_pin_file or user_pin_env" in message


def test_the_pin_never_shows_in_the_settings_repr(pkcs11_file: Pkcs11File) -> None:
    config = load_config(pkcs11_file.valid(), {})

    assert PIN not in repr(config)
    assert PIN not in str(config.backends)


def test_token_must_be_named(pkcs11_file: Pkcs11File) -> None:
    message = load_error(
        pkcs11_file.write(f"user_pin_file = {q(pkcs11_file.pin_file)}")
    )

    assert "[backend.hub] token_label: missing" in message
    assert "token_serial" in message


def test_token_named_twice_is_refused(pkcs11_file: Pkcs11File) -> None:
    path = pkcs11_file.valid('token_label = "xks"', 'token_serial = "5a1e0c2d"')

    assert "not both" in load_error(path)


def test_missing_module_file_says_how_to_install_one(
    pkcs11_file: Pkcs11File, tmp_path: Path
) -> None:
    pkcs11_file.module = tmp_path / "nowhere" / "libsofthsm2.so"

    message = load_error(pkcs11_file.valid())

    assert "[backend.hub] module" in message
    assert "apt-get install softhsm2" in message


def test_unknown_iv_source_lists_the_choices(pkcs11_file: Pkcs11File) -> None:
    message = load_error(pkcs11_file.valid('iv_source = "hsm"'))

    assert "[backend.hub] iv_source: must be one of ['random', 'token']" in message


def test_pool_size_out_of_range_is_refused(pkcs11_file: Pkcs11File) -> None:
    message = load_error(pkcs11_file.valid("pool_size = 0"))

    assert "[backend.hub] pool_size: must be between 1 and 256" in message


def test_health_key_id_must_be_an_external_key_id(pkcs11_file: Pkcs11File) -> None:
    message = load_error(pkcs11_file.valid('health_key_id = "foo#v2"'))

    assert "[backend.hub] health_key_id" in message


def test_misspelt_key_gets_a_suggestion(pkcs11_file: Pkcs11File) -> None:
    message = load_error(pkcs11_file.valid("pool_sise = 8"))

    assert "unknown key 'pool_sise'; did you mean 'pool_size'?" in message


def test_environment_is_passed_to_the_module_with_relative_paths_resolved(
    pkcs11_file: Pkcs11File, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = """
[backend.hub.environment]
SOFTHSM2_CONF = "./softhsm/softhsm2.conf"
FXPKCS11_CFG = "../elsewhere/fxpkcs11.cfg"
FX_LOG_LEVEL = "warning"
"""
    path = pkcs11_file.valid(table=table)
    monkeypatch.chdir("/")  # relative to the configuration file, not the working folder

    _, settings = backend(load_config(path, {}))

    assert dict(settings.module_environment) == {
        "SOFTHSM2_CONF": str(tmp_path / "softhsm" / "softhsm2.conf"),
        "FXPKCS11_CFG": str(tmp_path.parent / "elsewhere" / "fxpkcs11.cfg"),
        "FX_LOG_LEVEL": "warning",
    }


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('"NOT-A-NAME" = "x"', "is not an environment variable name"),
        ("SOFTHSM2_CONF = 3", "must be a non-empty string"),
        ('SOFTHSM2_CONF = ""', "must be a non-empty string"),
    ],
)
def test_bad_environment_entries_are_named(
    pkcs11_file: Pkcs11File, entry: str, problem: str
) -> None:
    path = pkcs11_file.valid(table=f"[backend.hub.environment]\n{entry}\n")

    message = load_error(path)

    assert "[backend.hub.environment]" in message
    assert problem in message


def test_without_python_pkcs11_the_kind_says_what_to_install(
    pkcs11_file: Pkcs11File, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the optional extra were not installed: python-pkcs11 cannot be
    # imported, nor (so) the driver's modules.
    for name in [m for m in sys.modules if m.startswith("sidecar.backends.pkcs11")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pkcs11", None)

    message = load_error(pkcs11_file.valid())

    assert "[backend.hub] kind" in message
    assert "[pkcs11]" in message


def test_pin_variable_is_read_from_the_environment_load_config_is_given(
    pkcs11_file: Pkcs11File, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XKS_TOKEN_PIN", raising=False)
    path = pkcs11_file.valid('user_pin_env = "XKS_TOKEN_PIN"')

    config = load_config(path, {"XKS_TOKEN_PIN": "pin-from-given-env"})

    assert backend(config)[1].user_pin.reveal() == "pin-from-given-env"
