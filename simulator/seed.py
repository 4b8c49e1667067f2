"""The keys a new simulator store starts with.

A key that does everything (``foo``), one per single usage and one with no
usage at all (so the refusals of KMS's usage rules can be exercised end to end),
and the key the sidecar's health check encrypts with.
"""

from __future__ import annotations

import logging

from simulator.keystore import KeyInfo, KeyStore, KeyUsage

log = logging.getLogger(__name__)

HEALTH_KEY_LABEL = "xks-health-check"

_BOTH = frozenset({KeyUsage.ENCRYPT, KeyUsage.DECRYPT})

SEED_KEYS: tuple[tuple[str, frozenset[KeyUsage]], ...] = (
    ("foo", _BOTH),
    ("encrypt_only_key", frozenset({KeyUsage.ENCRYPT})),
    ("decrypt_only_key", frozenset({KeyUsage.DECRYPT})),
    ("impotent_key", frozenset()),
    (HEALTH_KEY_LABEL, _BOTH),
)


def seed(store: KeyStore) -> list[KeyInfo]:
    """Create the seed keys if ``store`` holds no key; return what was created.

    A store with any key is left alone: its operator has chosen its keys. The
    seed keys are created in one transaction, so a crash never leaves a
    half-seeded store that a later seed would then skip.
    """
    if not store.is_empty():
        return []

    created = store.create_many(SEED_KEYS)
    log.info("seeded key store keys=%d", len(created))
    return created
