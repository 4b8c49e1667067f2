"""Waiting for something the stack does in the background.

What the stack does on its own (the deep health check every second, its log
lines) shows some time after the call that caused it, so a test that looks
for it polls, for a bounded time, rather than sleeping a guessed amount.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


async def eventually(
    probe: Callable[[], Awaitable[Any]], within: float, interval: float = 0.1
) -> Any:
    """Await ``probe()`` until it returns something truthy, for ``within`` s."""
    deadline = trio.current_time() + within
    while True:
        result = await probe()
        if result or trio.current_time() > deadline:
            return result
        await trio.sleep(interval)
