"""Seeding a new store with the development keys."""

from __future__ import annotations

from pathlib import Path

from simulator.keystore import KeyState, KeyStore, KeyUsage
from simulator.seed import HEALTH_KEY_LABEL, seed

MASTER_KEY = bytes(range(64, 96))
E, D = KeyUsage.ENCRYPT, KeyUsage.DECRYPT


def test_seed_creates_the_development_keys_in_a_new_store(tmp_path: Path) -> None:
    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as store:
        created = seed(store)

        keys = {k.label: k.usages for k in store.list()}
        assert keys == {
            "foo": {E, D},
            "encrypt_only_key": {E},
            "decrypt_only_key": {D},
            "impotent_key": set(),
            HEALTH_KEY_LABEL: {E, D},
        }
        assert sorted(k.label for k in created) == sorted(keys)
        assert all(k.state is KeyState.ENABLED for k in store.list())
    assert HEALTH_KEY_LABEL == "xks-health-check"


def test_seeding_a_populated_store_does_nothing(tmp_path: Path) -> None:
    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as store:
        store.create("mine", [E])

        assert seed(store) == []
        assert [k.label for k in store.list()] == ["mine"]


def test_seeding_twice_leaves_the_first_seed_alone(tmp_path: Path) -> None:
    with KeyStore.open(tmp_path / "keys.db", MASTER_KEY) as store:
        seed(store)
        store.rotate("foo")
        before = store.list()

        assert seed(store) == []
        assert store.list() == before
