"""Loading sidecar.toml: typed settings, and errors naming file, key and fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.backends import KINDS as BACKEND_KINDS
from sidecar.backends.cryptohub import CryptoHubSettings
from sidecar.config import ConfigError, load_config
from sidecar.config_backends import KINDS as CONFIG_KINDS
from sidecar.xks.messages import RequestMetadata
from sidecar.xks.routes import Operation
from tests.sidecar_app.conftest import SECRET, ConfigFile, private_file


def load_error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    message = str(caught.value)
    assert str(path) in message, "every error names the file"
    return message


def test_valid_configuration_loads_with_the_documented_defaults(
    config_file: ConfigFile,
) -> None:
    config = load_config(config_file.write(), {})

    (keystore,) = config.keystores
    assert (keystore.name, keystore.uri_path, keystore.region) == (
        "dev",
        "/dev/kms/xks/v1",
        "us-east-1",
    )
    assert keystore.credentials[0].secret.reveal() == SECRET
    tls = config.server.dataplane.tls
    assert tls is not None
    assert tls.mutual_tls is not None
    assert tls.mutual_tls.client_common_name == "cks.kms.us-east-1.amazonaws.com"
    hub = config.backends["hub"].settings
    assert isinstance(hub, CryptoHubSettings)
    assert hub.request_timeout_s == pytest.approx(0.150)
    assert hub.nodes[0].name == "hub-1"
    assert (config.health.key_id, config.health.max_age_s) == ("xks-health-check", 60)
    assert (config.health.vendor, config.health.model) == ("Futurex", "CryptoHub")
    assert config.logging.format == "json"


def test_relative_paths_resolve_against_the_config_folder(
    config_file: ConfigFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_file.edited(str(config_file.secret_file), "dev.secret")
    monkeypatch.chdir("/")

    config = load_config(path, {})

    assert config.keystores[0].credentials[0].secret.reveal() == SECRET


def test_missing_file_says_how_to_pass_one(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nowhere.toml")

    assert "--config" in message


def test_invalid_toml_is_reported(config_file: ConfigFile) -> None:
    assert "not valid TOML" in load_error(config_file.write("[server\n"))


def test_inline_secret_is_refused_without_echoing_it(config_file: ConfigFile) -> None:
    path = config_file.edited(
        f"secret_access_key_file = {str(config_file.secret_file)!r}".replace("'", '"'),
        'secret_access_key = "an-inline-secret-value"',
    )

    message = load_error(path)

    assert "[[keystore]] #1 [[keystore.credential]] #1 secret_access_key" in message
    assert "secret_access_key_file" in message
    assert "an-inline-secret-value" not in message


def test_secret_file_open_to_the_group_is_refused(config_file: ConfigFile) -> None:
    os.chmod(config_file.secret_file, 0o640)

    message = load_error(config_file.write())

    assert f"chmod 600 {config_file.secret_file}" in message
    assert SECRET not in message


def test_secret_comes_from_the_environment(config_file: ConfigFile) -> None:
    path = config_file.edited(
        f'secret_access_key_file = "{config_file.secret_file}"',
        'secret_access_key_env = "DEV_SECRET"',
    )

    config = load_config(path, {"DEV_SECRET": "from-the-environment"})

    assert config.keystores[0].credentials[0].secret.reveal() == "from-the-environment"


def test_unset_environment_variable_is_named(config_file: ConfigFile) -> None:
    path = config_file.edited(
        f'secret_access_key_file = "{config_file.secret_file}"',
        'secret_access_key_env = "DEV_SECRET"',
    )

    assert "DEV_SECRET is unset" in load_error(path)


def test_both_secret_sources_at_once_are_refused(config_file: ConfigFile) -> None:
    path = config_file.edited(
        f'secret_access_key_file = "{config_file.secret_file}"',
        f'secret_access_key_file = "{config_file.secret_file}"\n'
        'secret_access_key_env = "DEV_SECRET"',
    )

    assert "not both" in load_error(path, {"DEV_SECRET": "x"})


def test_misspelt_key_gets_a_suggestion(config_file: ConfigFile) -> None:
    path = config_file.edited("port = 0\n", "prot = 0\n")

    message = load_error(path)

    assert "[server]: unknown key 'prot'; did you mean 'port'?" in message


def test_bad_uri_path_names_the_key_and_the_form(config_file: ConfigFile) -> None:
    path = config_file.edited('"/dev/kms/xks/v1"', '"/dev/kms/xks/v2"')

    message = load_error(path)

    assert "[[keystore]] #1 uri_path" in message
    assert "/kms/xks/v1" in message


def test_keystore_naming_an_unknown_backend_is_refused(config_file: ConfigFile) -> None:
    path = config_file.edited('backend = "hub"', 'backend = "elsewhere"')

    assert "no [backend.elsewhere] table" in load_error(path)


def test_mtls_without_client_ca_says_how_to_turn_it_off(
    config_file: ConfigFile,
) -> None:
    text = config_file.text
    start = text.index("client_ca = ")
    path = config_file.write(text[:start] + text[text.index("\n", start) + 1 :])

    message = load_error(path)

    assert "[server.mtls] client_ca" in message
    assert "enabled = false" in message


def test_mtls_can_be_turned_off_explicitly(config_file: ConfigFile) -> None:
    path = config_file.edited("[server.mtls]\n", "[server.mtls]\nenabled = false\n")
    text = path.read_text()
    start = text.index("client_ca = ")
    path = config_file.write(text[:start] + text[text.index("\n", start) + 1 :])

    tls = load_config(path, {}).server.dataplane.tls

    assert tls is not None
    assert tls.mutual_tls is None


def test_health_results_may_not_be_kept_over_a_minute(config_file: ConfigFile) -> None:
    path = config_file.write(config_file.text + "\n[health]\nmax_age_s = 61\n")

    assert "[health] max_age_s: must be above 0 and at most 60" in load_error(path)


def test_health_interval_must_be_below_the_max_age(config_file: ConfigFile) -> None:
    path = config_file.write(
        config_file.text + "\n[health]\ninterval_s = 30\nmax_age_s = 30\n"
    )

    assert "[health] interval_s" in load_error(path)


def test_access_key_ids_are_unique_across_keystores(config_file: ConfigFile) -> None:
    second = config_file.text[config_file.text.index("[[keystore]]") :]
    second = second[: second.index("[backend.hub]")]
    second = second.replace('"dev"', '"other"').replace("/dev/", "/other/")

    path = config_file.write(config_file.text + second)

    assert "access key ids" in load_error(path)


def test_policy_maps_onto_secondary_authorization(config_file: ConfigFile) -> None:
    policy = """
[keystore.policy]
default = "deny"

[[keystore.policy.rule]]
name = "one-account"
effect = "allow"
principals = ["arn:aws:iam::111122223333:*"]
"""
    path = config_file.edited("\n[backend.hub]", policy + "\n[backend.hub]")

    policy_settings = load_config(path, {}).keystores[0].policy

    def decide(principal: str) -> bool:
        metadata = RequestMetadata("id", "Encrypt", aws_principal_arn=principal)
        return policy_settings.decide(Operation.ENCRYPT, "foo", metadata).allowed

    assert decide("arn:aws:iam::111122223333:role/app")
    assert not decide("arn:aws:iam::999999999999:role/app")


def test_policy_rule_with_an_unknown_condition_is_named(
    config_file: ConfigFile,
) -> None:
    policy = """
[keystore.policy]
[[keystore.policy.rule]]
name = "typo"
effect = "allow"
principal = ["arn:aws:iam::111122223333:*"]
"""
    path = config_file.edited("\n[backend.hub]", policy + "\n[backend.hub]")

    message = load_error(path)

    assert "[keystore.policy]" in message
    assert "principal" in message


def test_backend_timeout_is_written_in_milliseconds(config_file: ConfigFile) -> None:
    path = config_file.edited(
        'kind = "cryptohub"\n', 'kind = "cryptohub"\ntimeout_ms = 90\n'
    )

    hub = load_config(path, {}).backends["hub"].settings

    assert isinstance(hub, CryptoHubSettings)
    assert hub.request_timeout_s == pytest.approx(0.090)


def test_node_may_override_the_backend_tls_files(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    own_ca = tmp_path / "node-ca.pem"
    own_ca.write_text("placeholder")
    path = config_file.edited("port = 9100\n", f'port = 9100\nserver_ca = "{own_ca}"\n')

    hub = load_config(path, {}).backends["hub"].settings

    assert isinstance(hub, CryptoHubSettings)
    assert hub.nodes[0].server_ca == own_ca


def test_hsm_client_key_open_to_others_is_refused(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    key = private_file(tmp_path / "hsm.key", "not a key", mode=0o644)
    text = config_file.text
    start = text.index("client_key = ")
    end = text.index("\n", start)
    path = config_file.write(text[:start] + f'client_key = "{key}"' + text[end:])

    assert "[backend.hub] client_key" in load_error(path)


def test_plaintext_listener_refuses_tls_tables(config_file: ConfigFile) -> None:
    path = config_file.edited(
        "port = 0\n", "port = 0\nallow_plaintext_for_development = true\n"
    )

    assert "remove one" in load_error(path)


def test_every_configurable_backend_kind_can_be_opened() -> None:
    assert set(CONFIG_KINDS) == set(BACKEND_KINDS)
