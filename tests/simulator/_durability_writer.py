"""A key-store writer for the durability test, run as its own process.

It opens the store named on the command line (master key from the
environment, as the simulator takes it), then creates and rotates keys until it
is killed. After each mutation returns it encrypts a known plaintext under the
new key version and prints one acknowledgement line::

    ACK <label> <uuid> <version> <iv hex> <ciphertext hex> <tag hex>

A line is printed only after the mutation's method returned, so every line is
a write the store acknowledged. The test kills this process with SIGKILL and
checks that every acknowledged key version survived.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

from simulator.crypto import HsmCrypto
from simulator.keystore import KeyInfo, KeyStore, KeyUsage
from simulator.masterkey import load_master_key

AAD = b"durability"
USAGES = (KeyUsage.ENCRYPT, KeyUsage.DECRYPT)
IDLE_SECONDS = 0.001  # about the time a mutation takes here; not tuned further


def plaintext_for(label: str, version: int) -> bytes:
    """The plaintext acknowledged for one key version (the test rebuilds it)."""
    return f"{label}:{version}".encode()


def main() -> None:
    db_path, round_name = Path(sys.argv[1]), sys.argv[2]
    with KeyStore.open(db_path, load_master_key(None, os.environ)) as store:
        hsm = HsmCrypto(store)
        labels = [info.label for info in store.list()]
        for step in itertools.count():
            info = _mutate(store, labels, round_name, step)
            _acknowledge(hsm, info)
            # Idle a moment, as a server does between requests. Without it
            # almost every kill lands inside the next call, and a store that
            # returned before committing could pass unnoticed.
            time.sleep(IDLE_SECONDS)


def _mutate(store: KeyStore, labels: list[str], round_name: str, step: int) -> KeyInfo:
    # Every third step rotates an existing key, older rounds' keys included,
    # so rotations also follow a crash and a recovery.
    if step % 3 == 2 and labels:
        return store.rotate(labels[step % len(labels)])
    info = store.create(f"{round_name}-{step}", USAGES)
    labels.append(info.label)
    return info


def _acknowledge(hsm: HsmCrypto, info: KeyInfo) -> None:
    version = info.current_version
    result = hsm.encrypt(info.uuid, plaintext_for(info.label, version), AAD)
    assert result.key_version == version
    fields = (result.iv.hex(), result.ciphertext.hex(), result.tag.hex())
    print("ACK", info.label, info.uuid, version, *fields, flush=True)


if __name__ == "__main__":
    main()
