"""An isolated SoftHSMv2 token in a temporary directory, for the PKCS#11 tests.

SoftHSMv2 finds its token directory through the configuration file named by
``SOFTHSM2_CONF``, read at C_Initialize. ``make_token`` writes such a file
pointing into the test's own directory, sets the variable for this process
(the module is loaded in-process) and creates a token there with
``softhsm2-util``, so no test sees another's keys or the machine's tokens.
The PINs are dummies for a throwaway token; they also live in mode-600
files, as the sidecar and the CLIs take them.

CI installs softhsm2 (apt); where it is missing the tests skip, and CI's
XKS_FORBID_SKIPS turns that into a failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from sidecar.backends.pkcs11 import Pin, Pkcs11Settings
from sidecar.backends.pkcs11.cli_common import key_admin, loaded
from sidecar.backends.pkcs11.keyadmin import KeyAdmin
from sidecar.backends.pkcs11.provision import provision as create_conformance_keys

T = TypeVar("T")

MODULE_PATHS: Final = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN: Final = "so-pin-0000"
USER_PIN: Final = "user-pin-1111"
TOKEN_LABEL: Final = "xks-test"


def find_module() -> Path | None:
    for candidate in MODULE_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class SoftHsm:
    """One SoftHSMv2 configuration with (maybe) one token in it."""

    module: Path
    conf: Path
    token_label: str
    pin_file: Path
    so_pin_file: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def settings(self, **overrides: Any) -> Pkcs11Settings:
        values: dict[str, Any] = {
            "module_path": self.module,
            "user_pin": Pin(USER_PIN),
            "token_label": self.token_label,
        }
        values.update(overrides)
        return Pkcs11Settings(**values)

    def cli_arguments(self) -> list[str]:
        return [
            "--module",
            str(self.module),
            "--token-label",
            self.token_label,
            "--pin-file",
            str(self.pin_file),
        ]


def _secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def make_token(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    initialise: bool = True,
    copy_of: Path | None = None,
) -> SoftHsm:
    """A SoftHSMv2 configuration in ``directory``, with a token unless told not.

    ``copy_of`` is a token directory from ``make_template`` to copy instead
    of making a new token: SoftHSMv2 takes about 70 ms to generate and store
    each key, so tests share one provisioned token and each gets a copy.
    """
    module = find_module()
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("softhsm2 is not installed (apt install softhsm2)")
    tokens = directory / "tokens"
    tokens.mkdir()
    conf = directory / "softhsm2.conf"
    lines = (f"directories.tokendir = {tokens}", "objectstore.backend = file")
    conf.write_text("\n".join((*lines, "log.level = ERROR", "")))
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    hsm = SoftHsm(
        module=module,
        conf=conf,
        token_label=TOKEN_LABEL,
        pin_file=_secret_file(directory / "user.pin", USER_PIN),
        so_pin_file=_secret_file(directory / "so.pin", SO_PIN),
    )
    if copy_of is not None:
        shutil.copytree(copy_of, tokens, dirs_exist_ok=True)
    elif initialise:
        _init_token(hsm)
    return hsm


def make_template(factory: pytest.TempPathFactory) -> Path:
    """A token with the conformance keys, for ``make_token(copy_of=...)``."""
    directory = factory.mktemp("softhsm-template")
    with pytest.MonkeyPatch.context() as monkeypatch:
        provision(make_token(directory, monkeypatch))
    return directory / "tokens"


def _init_token(hsm: SoftHsm) -> None:
    # Dummy PINs on softhsm2-util's command line: a throwaway test token.
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            hsm.token_label,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ],
        env=hsm.env(),
        check=True,
        capture_output=True,
    )


def administer(hsm: SoftHsm, action: Callable[[KeyAdmin], T]) -> T:
    """Run ``action`` on a KeyAdmin in a session of its own, as an operator would."""
    args = argparse.Namespace(
        token_label=hsm.token_label,
        token_serial=None,
        pin_file=hsm.pin_file,
        pin_env=None,
        key_id_attribute="label",
    )
    with loaded(str(hsm.module)) as module, key_admin(module, args) as admin:
        return action(admin)


def provision(hsm: SoftHsm) -> None:
    """The conformance keys (foo, encrypt_only_key, ...) on the token."""
    administer(hsm, create_conformance_keys)
