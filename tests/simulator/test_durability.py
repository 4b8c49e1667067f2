"""A key store killed at any moment keeps every acknowledged write, uncorrupted.

A writer process (``_durability_writer``) creates and rotates keys in a loop
and prints an acknowledgement after each call returned. The test SIGKILLs it at
random moments, some mid-loop and some during start-up and ``open``, then
reopens the store: SQLite's integrity check passes, and every acknowledged key
version exists and decrypts what was encrypted under it.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.crypto import HsmCrypto
from simulator.errors import SimulatorError
from simulator.keystore import KeyStore
from simulator.masterkey import ENV_VAR
from tests.simulator._durability_writer import AAD, plaintext_for

MASTER_KEY = bytes(range(200, 232))
PROJECT_ROOT = Path(__file__).resolve().parents[2]

MID_LOOP_KILLS = 5
EARLY_KILLS = 2  # killed within the first 0.3 s: start-up, open, WAL recovery
# Enough acknowledged writes that the check cannot pass vacuously; a healthy
# run on a slow 2-core machine makes several hundred.
MIN_ACKS = 20
FIRST_ACK_TIMEOUT = 20.0


@dataclass(frozen=True)
class Ack:
    label: str
    uuid: str
    version: int
    iv: bytes
    ciphertext: bytes
    tag: bytes


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    db_path = tmp_path / "store" / "keys.db"

    acks: list[Ack] = []
    for n in range(MID_LOOP_KILLS + EARLY_KILLS):
        early = n >= MID_LOOP_KILLS
        acks += _run_and_kill(db_path, f"r{n}", rng, tmp_path, early=early)

    context = f"random seed {seed}, {len(acks)} acknowledged writes"
    assert len(acks) >= MIN_ACKS, context
    assert _integrity_check(db_path) == "ok", context
    _assert_all_acknowledged_present(db_path, acks, context)


def _run_and_kill(
    db_path: Path, name: str, rng: random.Random, tmp_path: Path, *, early: bool
) -> list[Ack]:
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.simulator._durability_writer",
                str(db_path),
                name,
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, ENV_VAR: MASTER_KEY.hex()},
            stdout=stdout,
            stderr=stderr,
        )
        try:
            if not early:
                _wait_for_first_ack(writer, out, err)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
    assert writer.returncode == -signal.SIGKILL, err.read_text()
    return _read_acks(out)


def _wait_for_first_ack(writer: subprocess.Popen[bytes], out: Path, err: Path) -> None:
    deadline = time.monotonic() + FIRST_ACK_TIMEOUT
    while b"\n" not in out.read_bytes():
        assert writer.poll() is None, f"writer exited early: {err.read_text()}"
        assert time.monotonic() < deadline, "writer acknowledged nothing in time"
        time.sleep(0.005)


def _read_acks(out: Path) -> list[Ack]:
    # A kill may cut the last line short; only complete lines were acknowledged.
    lines = out.read_text().split("\n")[:-1]
    return [_parse_ack(line) for line in lines]


def _parse_ack(line: str) -> Ack:
    tag, label, key_uuid, version, iv, ciphertext, gcm_tag = line.split(" ")
    assert tag == "ACK", line
    return Ack(
        label,
        key_uuid,
        int(version),
        bytes.fromhex(iv),
        bytes.fromhex(ciphertext),
        bytes.fromhex(gcm_tag),
    )


def _integrity_check(db_path: Path) -> str:
    # The first connection after a crash also runs WAL recovery.
    with closing(sqlite3.connect(db_path)) as raw:
        (result,) = raw.execute("PRAGMA integrity_check").fetchone()
    return str(result)


def _assert_all_acknowledged_present(
    db_path: Path, acks: list[Ack], context: str
) -> None:
    with KeyStore.open(db_path, MASTER_KEY) as store:
        hsm = HsmCrypto(store)
        for ack in acks:
            try:
                info = store.get(ack.uuid)
                plaintext = hsm.decrypt(
                    ack.uuid, ack.version, ack.iv, ack.ciphertext, ack.tag, AAD
                )
            except SimulatorError as exc:
                pytest.fail(f"{context}: lost {ack.label} v{ack.version}: {exc!r}")
            assert info.label == ack.label, context
            assert plaintext == plaintext_for(ack.label, ack.version), context

        # No torn rotation: every key's versions run 1..current without a gap.
        for info in store.list():
            assert info.versions == tuple(range(1, info.current_version + 1)), context
