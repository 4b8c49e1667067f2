"""Provisioning and the admin CLI, run as an operator runs them.

Most tests call the commands' ``main`` in this process (the module is loaded
here anyway, and a subprocess costs half a second); one test per command
runs it as ``python -m``, as an operator or the end-to-end harness would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType

from sidecar.backends.pkcs11 import admin, provision
from sidecar.backends.pkcs11.keyadmin import AdminError, KeyAdmin
from sidecar.backends.pkcs11.provision import CONFORMANCE_KEYS
from tests.backends.softhsm import SoftHsm, administer, make_template, make_token

Outcome = tuple[int, str, str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> SoftHsm:
    """A token with the conformance keys already on it."""
    return make_token(tmp_path, monkeypatch, copy_of=template)


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    """A SoftHSMv2 configuration with no token yet: provisioning makes it."""
    return make_token(tmp_path, monkeypatch, initialise=False)


def _keys(hsm: SoftHsm, capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    status = admin.main([*hsm.cli_arguments(), "keys", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _provision(hsm: SoftHsm, capsys: pytest.CaptureFixture[str]) -> Outcome:
    init = ["--init-token", "--so-pin-file", str(hsm.so_pin_file)]
    status = provision.main([*hsm.cli_arguments(), *init])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _python_m(hsm: SoftHsm, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", f"sidecar.backends.pkcs11.{tool}", *args]
    return subprocess.run(
        command, env=hsm.env(), capture_output=True, text=True, check=False
    )


# --- provisioning ---------------------------------------------------------------


def test_provisioning_creates_the_token_and_the_conformance_keys(
    empty: SoftHsm,
) -> None:
    init = ["--init-token", "--so-pin-file", str(empty.so_pin_file)]
    done = _python_m(empty, "provision", *empty.cli_arguments(), *init)

    assert done.returncode == 0, done.stderr
    assert "initialised token" in done.stdout
    keys = {info.key_id: info for info in administer(empty, KeyAdmin.list_keys)}
    for key_id, usages in CONFORMANCE_KEYS:
        assert keys[key_id].usages == usages, key_id
        assert keys[key_id].key_spec == "AES_256"
        assert keys[key_id].enabled


def test_provisioning_twice_changes_nothing(
    hsm: SoftHsm, capsys: pytest.CaptureFixture[str]
) -> None:
    before = administer(hsm, KeyAdmin.list_keys)

    status, out, err = _provision(hsm, capsys)

    assert status == 0, err
    assert "initialised" not in out
    assert out.count("exists") == len(CONFORMANCE_KEYS)
    assert administer(hsm, KeyAdmin.list_keys) == before


def test_provisioning_without_a_token_or_init_is_refused(
    empty: SoftHsm, capsys: pytest.CaptureFixture[str]
) -> None:
    status = provision.main(empty.cli_arguments())

    assert status == 1
    assert capsys.readouterr().err.startswith("error: no such token")


def test_the_pin_never_appears_in_output(
    empty: SoftHsm, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = empty.pin_file.read_text().strip()
    outcomes = [
        _provision(empty, capsys),
        _keys(empty, capsys, "list"),
        _keys(empty, capsys, "show", "foo"),
    ]

    for _, out, err in outcomes:
        assert pin not in out + err


# --- the admin CLI -------------------------------------------------------------


def test_admin_runs_as_a_module(hsm: SoftHsm) -> None:
    done = _python_m(hsm, "admin", *hsm.cli_arguments(), "keys", "list")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == [
        "LABEL",
        "STATE",
        "USAGES",
        "VERSION",
    ]
    assert "foo " in done.stdout


def test_admin_rotate_disable_enable_like_the_simulator_console(
    hsm: SoftHsm, capsys: pytest.CaptureFixture[str]
) -> None:
    rotated = _keys(hsm, capsys, "rotate", "foo")
    disabled = _keys(hsm, capsys, "disable", "foo")
    enabled = _keys(hsm, capsys, "enable", "foo")

    assert rotated[0] == 0, rotated[2]
    assert rotated[1].startswith("rotated key foo\n")
    assert "current version  2" in rotated[1]
    assert "versions         1,2" in rotated[1]
    assert "state            DISABLED" in disabled[1]
    assert "state            ENABLED" in enabled[1]


def test_a_rotated_version_keeps_a_disabled_keys_state(hsm: SoftHsm) -> None:
    administer(hsm, lambda a: a.set_enabled("foo", False))

    rotated = administer(hsm, lambda a: a.rotate("foo"))

    assert (rotated.current_version, rotated.enabled) == (2, False)


def test_admin_create_usages_and_destroy(
    hsm: SoftHsm, capsys: pytest.CaptureFixture[str]
) -> None:
    created = _keys(hsm, capsys, "create", "wrapping-key", "--usages", "wrap,unwrap")
    narrowed = _keys(hsm, capsys, "usages", "wrapping-key", "unwrap")
    unconfirmed = _keys(hsm, capsys, "destroy", "wrapping-key")
    destroyed = _keys(hsm, capsys, "destroy", "wrapping-key", "--yes")
    gone = _keys(hsm, capsys, "show", "wrapping-key")

    assert "usages           WRAP,UNWRAP" in created[1]
    assert "usages           UNWRAP" in narrowed[1]
    assert unconfirmed[0] == 1
    assert destroyed[0] == 0, destroyed[2]
    assert gone == (1, "", "error: no key wrapping-key\n")


@pytest.mark.parametrize(
    "args",
    [
        ("create", "foo"),  # label taken
        ("create", "bad#id"),  # not an external key id
        ("rotate", "no-such-key"),
        ("usages", "foo", "sign"),
    ],
)
def test_refused_commands_exit_1(
    hsm: SoftHsm, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    status, _, err = _keys(hsm, capsys, *args)

    assert status == 1
    assert err.startswith("error: ")


def test_a_wrong_command_line_exits_2(hsm: SoftHsm) -> None:
    with pytest.raises(SystemExit) as caught:
        admin.main([*hsm.cli_arguments(), "keys", "frobnicate", "foo"])

    assert caught.value.code == 2


def test_disable_refuses_where_the_token_cannot_keep_the_date(hsm: SoftHsm) -> None:
    def make_private_key(admin: KeyAdmin) -> None:
        # SoftHSMv2 stores a private object's dates in clear, then fails to
        # decrypt them on reading: keyadmin.py explains.
        template = {Attribute.PRIVATE: True}
        admin.session.generate_key(
            KeyType.AES, 256, label="priv", store=True, template=template
        )

    administer(hsm, make_private_key)

    with pytest.raises(AdminError, match="cannot keep a validity date"):
        administer(hsm, lambda a: a.set_enabled("priv", False))
    assert administer(hsm, lambda a: a.show("priv")).enabled
