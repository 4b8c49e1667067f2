"""Settings merge command line, TOML and environment; secrets stay off the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sidecar.bench.payloads import Operation
from sidecar.bench.settings import (
    SECRET_ENV_DEFAULT,
    SettingsError,
    add_arguments,
    resolve,
)

REQUIRED = {
    "endpoint": "https://xks.example.test:4443",
    "key_id": "foo",
    "access_key_id": "AKIDEXAMPLE",
}
ENV = {SECRET_ENV_DEFAULT: "s3cret-from-env"}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_model_kms() -> None:
    settings = resolve(REQUIRED, None, ENV)

    assert (settings.target_rate, settings.rate) == (1800.0, 1800.0)
    assert settings.timeout_ms == settings.latency_budget_ms == 250.0
    assert settings.tight_budget_ms == 50.0
    assert settings.mix == {
        Operation.ENCRYPT: 60,
        Operation.DECRYPT: 35,
        Operation.ENCRYPT_LARGE: 5,
    }
    assert settings.server_name == "xks.example.test"
    assert settings.secret.reveal() == "s3cret-from-env"


def test_command_line_beats_config_file_beats_environment(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        'region = "eu-west-1"\nrate = 500\nconnections = 4\nca_file = "ca.pem"\n',
    )
    environ = {**ENV, "XKS_BENCH_REGION": "ap-south-1", "XKS_BENCH_ACCESS_KEY_ID": "X"}

    settings = resolve({**REQUIRED, "connections": 8}, config, environ)

    assert settings.connections == 8  # command line
    assert settings.region == "eu-west-1"  # file over environment
    assert settings.rate == 500.0  # TOML integer taken as a float
    assert settings.access_key_id == "AKIDEXAMPLE"
    assert settings.ca_file == tmp_path / "ca.pem"  # relative to the file


def test_environment_supplies_region_and_access_key_id() -> None:
    environ = {
        **ENV,
        "XKS_BENCH_REGION": "ap-south-1",
        "XKS_BENCH_ACCESS_KEY_ID": "AK2",
    }
    given = {"endpoint": REQUIRED["endpoint"], "key_id": "foo"}

    settings = resolve(given, None, environ)

    assert (settings.region, settings.access_key_id) == ("ap-south-1", "AK2")


def test_secret_comes_from_a_file_or_a_named_variable(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n", encoding="utf-8")
    secret_file.chmod(0o600)

    from_file = resolve({**REQUIRED, "secret_file": secret_file}, None, {})
    from_env = resolve(
        {**REQUIRED, "secret_env": "MY_SECRET"}, None, {"MY_SECRET": "e"}
    )

    assert from_file.secret.reveal() == "from-file"
    assert from_env.secret.reveal() == "e"
    assert "from-file" not in repr(from_file)


def test_there_is_no_command_line_option_for_the_secret() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_arguments(parser)

    with pytest.raises(SystemExit):  # argparse's unknown-argument exit
        parser.parse_args(["--secret", "x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--secret-access-key", "x"])


def test_a_config_file_holding_a_secret_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'secret = "oops"\n')

    with pytest.raises(SettingsError, match="holds a secret"):
        resolve(REQUIRED, config, ENV)


@pytest.mark.parametrize(
    ("given", "text", "message"),
    [
        ({}, "colour = 1\n", "unknown key 'colour'"),
        ({}, 'rate = "fast"\n', "key 'rate' must be of type float"),
        ({"endpoint": "http://x"}, "", "must be https://"),
        ({"endpoint": "https://x/kms/xks/v1"}, "", "without a path"),
        ({"mix": "encrypt=60,sign=40"}, "", "unknown operation 'sign'"),
        ({"mix": "encrypt=0"}, "", "at least one operation"),
        ({"rate": -1.0}, "", "rate must be greater than 0"),
        ({"give_up_ms": 100.0}, "", "give_up_ms must be at least timeout_ms"),
        ({"warmup": 0}, "", "warmup must make some ciphertexts"),
    ],
)
def test_bad_settings_name_the_setting(
    tmp_path: Path, given: dict[str, object], text: str, message: str
) -> None:
    config = write_config(tmp_path, text)

    with pytest.raises(SettingsError, match=message):
        resolve({**REQUIRED, **given}, config, ENV)


def test_missing_secret_says_where_to_put_it() -> None:
    with pytest.raises(SettingsError, match="never taken from the command line"):
        resolve(REQUIRED, None, {})


def test_missing_endpoint_names_the_option() -> None:
    with pytest.raises(SettingsError, match="--endpoint"):
        resolve({"key_id": "foo", "access_key_id": "A"}, None, ENV)
