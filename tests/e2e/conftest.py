"""Fixtures of the end-to-end suite: one real stack for the whole session.

``stack`` starts the simulator and the sidecar once per session (see
``harness``) and, when the session ends and both have stopped, fails if any
secret reached their logs. The autouse ``_faults_cleared`` undoes the fault
injections of any test that used the console, so a failing test cannot
leave the HSM slow or down for the next one. Keys a test changes are its own
to restore (common.md, harness contract).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from fixtures.pki import Pki
from tests.e2e.harness import Stack, find_leaks, running_stack


@pytest.fixture(scope="session")
def stack(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(pki, tmp_path_factory.mktemp("stack")) as started:
        yield started
    # Both processes have stopped: their logs are complete.
    leaks = find_leaks(started)
    assert not leaks, f"secrets reached the logs: {leaks}"


@pytest.fixture(autouse=True)
def _faults_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" not in request.fixturenames:
        return
    stack: Stack = request.getfixturevalue("stack")
    if stack.console_used:
        # Sync on purpose: it runs after the test's own Trio run has ended,
        # for sync and async tests alike.
        status, _, err = trio.run(stack.console, "faults clear")
        stack.console_used = False
        assert status == 0, f"faults clear failed: {err}"
