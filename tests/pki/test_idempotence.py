"""Minting again reuses, refuses, or replaces, and says which."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fixtures import manifest
from fixtures.errors import ParameterMismatch
from fixtures.params import Parameters
from fixtures.pki import Pki, ensure, mint
from tests.pki.certs import client_verifier, common_name, read_cert, verify_chain

# Everything that would show a rewrite: same inode (no rename over the file),
# same modification time, same bytes.
Snapshot = dict[Path, tuple[int, int, bytes]]


def snapshot(root: Path) -> Snapshot:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in files}


def contents(root: Path) -> dict[Path, bytes]:
    return {path: data for path, (_, _, data) in snapshot(root).items()}


def all_changed(before: dict[Path, bytes], after: dict[Path, bytes]) -> bool:
    return before.keys() == after.keys() and all(
        before[path] != after[path] for path in before
    )


@pytest.fixture
def minted(tmp_path: Path) -> Pki:
    return mint(tmp_path / "pki")


def test_minting_takes_well_under_two_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    mint(tmp_path)

    assert time.perf_counter() - started < 2.0


def test_second_mint_with_same_parameters_rewrites_nothing(minted: Pki) -> None:
    before = snapshot(minted.root)
    outcome = ensure(minted.root, Parameters())

    assert not outcome.minted
    assert outcome.pki == minted
    assert snapshot(minted.root) == before


def test_fqdn_case_does_not_count_as_a_new_parameter(minted: Pki) -> None:
    before = snapshot(minted.root)

    mint(minted.root, fqdn="XKS.Example.Test")

    assert snapshot(minted.root) == before


def test_other_parameters_are_refused_and_change_nothing(minted: Pki) -> None:
    before = snapshot(minted.root)

    with pytest.raises(ParameterMismatch, match=r"region=us-east-1.*--force"):
        mint(minted.root, region="eu-west-2")
    with pytest.raises(ParameterMismatch, match=r"fqdn=xks\.example\.test"):
        mint(minted.root, fqdn="xks.other.test")
    assert snapshot(minted.root) == before


def test_force_remints_every_file_with_the_new_parameters(minted: Pki) -> None:
    before = contents(minted.root)

    pki = mint(minted.root, region="eu-west-2", force=True)

    assert all_changed(before, contents(minted.root))
    assert common_name(read_cert(pki.kms_client_cert)) == (
        "cks.kms.eu-west-2.amazonaws.com"
    )
    assert json.loads(pki.manifest.read_text())["parameters"]["region"] == "eu-west-2"


def test_force_with_same_parameters_still_remints(minted: Pki) -> None:
    before = contents(minted.root)

    assert ensure(minted.root, Parameters(), force=True).minted
    assert all_changed(before, contents(minted.root))


def test_missing_file_remints_a_consistent_set(minted: Pki) -> None:
    before = contents(minted.root)
    minted.kms_client_key.unlink()

    outcome = ensure(minted.root, Parameters())

    assert outcome.minted
    assert "kms/client.key is missing" in outcome.reason
    assert all_changed(before, contents(minted.root))
    verify_chain(client_verifier(minted.aws_root_cert), minted.kms_client_chain)


def test_altered_file_remints(minted: Pki) -> None:
    minted.sidecar_server_chain.write_bytes(b"tampered")

    outcome = ensure(minted.root, Parameters())

    assert outcome.minted
    assert "changed since it was minted" in outcome.reason


def test_certificates_near_expiry_are_renewed(
    minted: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Leaves live a year: a margin longer than that makes them all "expiring".
    monkeypatch.setattr(manifest, "RENEWAL_MARGIN", manifest.RENEWAL_MARGIN * 60)

    outcome = ensure(minted.root, Parameters())

    assert outcome.minted
    assert "expires at" in outcome.reason
