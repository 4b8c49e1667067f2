"""The command line: check-config, kms-console, and serve with signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidecar.cli import main
from tests.sidecar_app.conftest import ACCESS_KEY_ID, ROOT, SECRET, ConfigFile

# The node no HSM listens on: the sidecar starts, reporting it UNAVAILABLE.
NO_HSM = "port = 9100\n"


def test_check_config_accepts_a_valid_file(
    config_file: ConfigFile, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["check-config", "--config", str(config_file.write())])

    out = capsys.readouterr().out
    assert status == 0
    assert "keystore dev: /dev/kms/xks/v1" in out
    assert out.rstrip().endswith(": OK")


def test_bad_configuration_is_one_line_and_status_1(
    config_file: ConfigFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file.edited('region = "us-east-1"', 'region = "mars"')

    status = main(["check-config", "--config", str(path)])

    errors = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(errors) == 1
    assert "[[keystore]] #1 region" in json.loads(errors[0])["msg"]


def test_kms_console_prints_the_file_the_console_accepts(
    config_file: ConfigFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file.edited(
        "port = 0\n", 'port = 443\npublic_endpoint = "https://xks.example.test"\n'
    )

    status = main(["kms-console", "--config", str(path), "--keystore", "dev"])

    assert status == 0
    assert json.loads(capsys.readouterr().out) == {
        "XksProxyUriEndpoint": "https://xks.example.test",
        "XksProxyUriPath": "/dev/kms/xks/v1",
        "XksProxyAuthenticationCredential": {
            "AccessKeyId": ACCESS_KEY_ID,
            "RawSecretAccessKey": SECRET,
        },
    }


def test_kms_console_takes_the_endpoint_from_the_certificate(
    config_file: ConfigFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file.edited("port = 0\n", "port = 8443\n")

    main(["kms-console", "--config", str(path), "--keystore", "dev"])

    endpoint = json.loads(capsys.readouterr().out)["XksProxyUriEndpoint"]
    assert endpoint == "https://xks.example.test:8443"


def test_kms_console_names_the_keystores_it_knows(
    config_file: ConfigFile, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["kms-console", "--config", str(config_file.write()), "--keystore", "nope"]
    )

    assert status == 1
    assert "known: ['dev']" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_writes_the_ready_file_and_stops_cleanly_on_sigterm(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    ready = tmp_path / "ready.json"
    config = config_file.edited(NO_HSM, "port = 1\n")
    command = [sys.executable, "-m", "sidecar", "serve", "--config", str(config)]
    log = (tmp_path / "sidecar.log").open("wb")
    child = subprocess.Popen(
        [*command, "--ready-file", str(ready)], cwd=ROOT, stderr=log
    )
    try:
        deadline = time.monotonic() + 20
        while (
            not ready.exists() and child.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        ports = json.loads(ready.read_text())["ports"]
        child.send_signal(signal.SIGTERM)
        status = child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
        log.close()

    assert isinstance(ports["xks"], int)
    assert ports["xks"] > 0
    assert status == 0
    assert not ready.exists()
    messages = [
        json.loads(line)["msg"]
        for line in (tmp_path / "sidecar.log").read_text().splitlines()
    ]
    assert "sidecar stopped" in messages
