"""What the admin console is given: where to listen and what it administers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulator.crypto import HsmCrypto
from simulator.faults import Faults
from simulator.keystore import KeyStore
from simulator.stats import Stats


@dataclass(frozen=True)
class ConsoleSettings:
    """Listener settings of the SSH admin console.

    ``host_key`` is an OpenSSH or PKCS#8 private key; ``authorized_keys`` is an
    OpenSSH ``authorized_keys`` file. Both are read once, at start-up.
    """

    listen: str
    port: int
    host_key: Path
    authorized_keys: Path


@dataclass
class ConsoleContext:
    """The live simulator objects the console commands act on.

    The console runs in the simulator's own thread (see ``server.py``), so
    commands touch these objects directly, with no locks.
    """

    store: KeyStore
    crypto: HsmCrypto
    faults: Faults
    stats: Stats
    node_id: str
    model: str
    version: str
