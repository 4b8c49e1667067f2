"""The simulator console's SSH keys load the way the console will load them."""

from __future__ import annotations

import asyncssh
import pytest

from fixtures.pki import Pki


@pytest.mark.parametrize("field", ["ssh_host_key", "ssh_admin_key"])
def test_ssh_private_keys_are_openssh_ed25519(pki: Pki, field: str) -> None:
    data = getattr(pki, field).read_bytes()

    key = asyncssh.import_private_key(data)

    assert data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert key.get_algorithm() == "ssh-ed25519"


def test_admin_authorized_keys_line_holds_the_admin_public_key(pki: Pki) -> None:
    admin = asyncssh.import_private_key(pki.ssh_admin_key.read_bytes())

    authorized = asyncssh.import_authorized_keys(pki.ssh_admin_pubkey.read_text())

    # validate() answers the key's options ({} here), or None for an unknown key.
    assert (
        authorized.validate(admin.convert_to_public(), "127.0.0.1", "127.0.0.1") == {}
    )
    assert pki.ssh_admin_pubkey.read_text().count("\n") == 1


def test_host_key_is_not_the_admin_key(pki: Pki) -> None:
    host = asyncssh.import_private_key(pki.ssh_host_key.read_bytes())
    authorized = asyncssh.import_authorized_keys(pki.ssh_admin_pubkey.read_text())

    assert (
        authorized.validate(host.convert_to_public(), "127.0.0.1", "127.0.0.1") is None
    )
