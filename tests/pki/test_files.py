"""What lands on disk: modes, the manifest, and ``load``."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from fixtures.errors import ManifestError
from fixtures.files import write_atomic
from fixtures.layout import LAYOUT
from fixtures.pki import FILE_FIELDS, Pki, load, mint

SECRET_KINDS = {"private-key", "ssh-private-key"}


def manifest_files(pki: Pki) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = json.loads(pki.manifest.read_text())["files"]
    return files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_readable_by_owner_only(pki: Pki) -> None:
    secrets = [f for f, e in manifest_files(pki).items() if e["kind"] in SECRET_KINDS]

    assert len(secrets) == 12
    for field in secrets:
        assert mode(getattr(pki, field)) == 0o600, field


def test_certificates_and_public_keys_are_world_readable(pki: Pki) -> None:
    public = [
        f for f, e in manifest_files(pki).items() if e["kind"] not in SECRET_KINDS
    ]

    for field in public:
        assert mode(getattr(pki, field)) == 0o644, field


def test_manifest_describes_every_pki_file(pki: Pki) -> None:
    files = manifest_files(pki)

    assert set(files) == FILE_FIELDS == set(LAYOUT)
    for field, entry in files.items():
        assert pki.root / entry["path"] == getattr(pki, field)
        assert entry["purpose"]
        assert entry["kind"]


def test_manifest_gives_subject_issuer_and_not_after_of_certificates(pki: Pki) -> None:
    entry = manifest_files(pki)["kms_client_chain"]

    assert entry["subject"].startswith("CN=cks.kms.us-east-1.amazonaws.com,")
    assert entry["issuer"].startswith("CN=Amazon Issuing CA,")
    assert entry["not_after"].endswith("+00:00")


def test_manifest_records_the_parameters(pki: Pki) -> None:
    parameters = json.loads(pki.manifest.read_text())["parameters"]

    assert parameters == {"fqdn": "xks.example.test", "region": "us-east-1"}


def test_every_pki_path_exists_inside_the_root(pki: Pki) -> None:
    for field in fields(Pki):
        path = getattr(pki, field.name)
        assert path.exists()
        assert path.is_relative_to(pki.root)


def test_load_rebuilds_the_minted_pki(pki: Pki) -> None:
    assert load(pki.root) == pki


def test_minting_leaves_no_temporary_files(pki: Pki) -> None:
    assert not [p for p in pki.root.rglob("*") if p.name.startswith(".")]


def test_load_without_manifest_says_how_to_mint(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="mint"):
        load(tmp_path)


def test_load_refuses_a_manifest_pointing_outside_the_folder(tmp_path: Path) -> None:
    pki = mint(tmp_path / "pki")
    document = json.loads(pki.manifest.read_text())
    document["files"]["kms_client_key"]["path"] = "../../etc/passwd"
    pki.manifest.write_text(json.dumps(document))

    with pytest.raises(ManifestError, match="leaves the PKI folder"):
        load(pki.root)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A corruption: set one value, addressed by a dotted path, in the manifest."""

    def corrupt(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = document
        for key in parents:
            node = node[key]
        node[last] = value

    return corrupt


@pytest.mark.parametrize(
    "corrupt",
    [
        _set("format", 2),
        _set("parameters.region", "nowhere"),
        _set("files.kms_client_key", ["not", "an", "entry"]),
        _set("files.kms_client_key.sha256", 42),
        _set("files.kms_client_cert.not_after", "2030-01-01T00:00:00"),
        _set("minted_at", "yesterday"),
    ],
)
def test_malformed_manifest_is_refused_unless_forced(
    tmp_path: Path, corrupt: Callable[[dict[str, Any]], None]
) -> None:
    pki = mint(tmp_path)
    document = json.loads(pki.manifest.read_text())
    corrupt(document)
    pki.manifest.write_text(json.dumps(document))

    with pytest.raises(ManifestError, match="--force"):
        mint(tmp_path)
    assert mint(tmp_path, force=True) == pki


def test_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    pki = mint(tmp_path)
    pki.manifest.write_text("{not json")

    with pytest.raises(ManifestError, match="not a readable PKI manifest"):
        load(tmp_path)


def test_write_atomic_sets_the_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "secret.key"
    previous = os.umask(0)
    try:
        write_atomic(target, b"old", mode=0o600)
        write_atomic(target, b"new", mode=0o600)
    finally:
        os.umask(previous)

    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["secret.key"]
