"""``python -m fixtures`` end to end, as a developer runs it.

Setup mints in-process; only the command under test runs as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures.cli import main
from fixtures.pki import mint


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fixtures", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_mint_then_mint_again_reuses(tmp_path: Path) -> None:
    out = str(tmp_path / "pki")

    first = run(
        "mint", "--out", out, "--fqdn", "xks.corp.test", "--region", "eu-west-1"
    )
    second = run(
        "mint", "--out", out, "--fqdn", "xks.corp.test", "--region", "eu-west-1"
    )

    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout.startswith("minted the development PKI")
    assert second.stdout.startswith("reused the development PKI")
    assert "fqdn=xks.corp.test, region=eu-west-1" in second.stdout


def test_other_parameters_fail_with_a_message_until_forced(tmp_path: Path) -> None:
    out = str(tmp_path)
    mint(tmp_path)

    refused = run("mint", "--out", out, "--region", "eu-central-1")
    forced = run("mint", "--out", out, "--region", "eu-central-1", "--force")

    assert refused.returncode == 1
    assert refused.stderr.startswith("xks-fixtures: error: ")
    assert "--force" in refused.stderr
    assert forced.returncode == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["parameters"]["region"] == "eu-central-1"


def test_show_prints_parameters_and_every_file(tmp_path: Path) -> None:
    mint(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())

    shown = run("show", "--out", str(tmp_path))

    assert shown.returncode == 0
    assert "fqdn xks.example.test, region us-east-1" in shown.stdout
    for entry in manifest["files"].values():
        assert entry["path"] in shown.stdout


def test_show_json_prints_the_manifest(tmp_path: Path) -> None:
    mint(tmp_path)

    shown = run("show", "--out", str(tmp_path), "--json")

    assert json.loads(shown.stdout) == json.loads(
        (tmp_path / "manifest.json").read_text()
    )


def test_show_without_a_pki_fails_with_a_hint(tmp_path: Path) -> None:
    shown = run("show", "--out", str(tmp_path))

    assert shown.returncode == 1
    assert "xks-fixtures mint" in shown.stderr


def test_console_script_entry_point_returns_status(tmp_path: Path) -> None:
    assert main(["mint", "--out", str(tmp_path), "--region", "bogus"]) == 1
    assert main(["mint", "--out", str(tmp_path)]) == 0
