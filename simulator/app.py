"""The whole simulator in one Trio task: key store, host protocol, console.

``run_simulator`` opens the key store (seeding it when configured and empty),
then runs the host-protocol server and the SSH admin console side by side in
one nursery, sharing one store, one set of faults and one set of counters, so
a fault switched on in the console is seen by the next host command. When
either service fails, the nursery cancels the other and the error propagates;
the store is closed on the way out whatever happened.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import trio

from simulator.config import SimulatorConfig
from simulator.console import ConsoleContext, serve_console
from simulator.crypto import HsmCrypto
from simulator.faults import Faults
from simulator.hostproto.handlers import HandlerContext
from simulator.keystore import KeyStore
from simulator.masterkey import load_master_key
from simulator.seed import seed
from simulator.server import serve_host_protocol
from simulator.stats import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundPorts:
    """The ports the services actually listen on (port 0 picks a free one)."""

    host_port: int
    console_port: int


async def run_simulator(
    config: SimulatorConfig,
    *,
    task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until cancelled; ``task_status.started`` gets the bound ports."""
    store = _open_store(config)
    try:
        crypto = HsmCrypto(store)
        faults, stats = Faults(), Stats()
        handler_ctx = HandlerContext(store=store, crypto=crypto, node=config.node)
        console_ctx = ConsoleContext(
            store=store,
            crypto=crypto,
            faults=faults,
            stats=stats,
            node_id=config.node.node_id,
            model=config.node.model,
            version=config.node.version,
        )
        async with trio.open_nursery() as nursery:
            host_port = await nursery.start(
                serve_host_protocol, config.host, handler_ctx, faults, stats
            )
            console_port = await nursery.start(
                serve_console, config.console, console_ctx
            )
            log.info(
                "simulator running node=%s host_port=%d console_port=%d",
                config.node.node_id,
                host_port,
                console_port,
            )
            task_status.started(BoundPorts(host_port, console_port))
    finally:
        store.close()


def _open_store(config: SimulatorConfig) -> KeyStore:
    """Open the configured store, creating its folder, and seed it if asked.

    Blocking file I/O before any service starts: nothing waits on it yet.
    """
    settings = config.store
    master_key = load_master_key(settings.master_key_file, os.environ)
    settings.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = KeyStore.open(settings.path, master_key)
    try:
        if settings.seed:
            seed(store)  # leaves a store that already holds keys alone
    except BaseException:
        store.close()
        raise
    return store
