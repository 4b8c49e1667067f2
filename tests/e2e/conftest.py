"""Fixtures of the end-to-end suite: one real stack per backend for the session.

``stack`` is parametrized by backend (``stack.BACKENDS``: the CryptoHub
simulator, and SoftHSMv2 through the PKCS#11 backend), so every test that
asks for it runs once against each, unchanged. ``simulator_stack`` is the
simulator's stack alone, for the tests that inject faults: only the
simulator can (docs/conformance.md says which tests and why). Each stack is
started the first time a test needs it and shared by every test after
(``_stacks``); when the session ends and every process has stopped, the
check fails if any secret reached a log.

SoftHSMv2 missing skips the pkcs11 tests, with the reason; CI installs it
and sets XKS_FORBID_SKIPS, which turns any skip into a failed run.

The autouse ``_faults_cleared`` undoes the fault injections of any test that
used the console, so a failing test cannot leave the HSM slow or down for
the next one. Keys a test changes are its own to restore (common.md,
harness contract).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import trio

from fixtures.pki import Pki
from tests.e2e.harness import running_stack
from tests.e2e.hsm_side import BackendUnavailable
from tests.e2e.leaks import find_leaks
from tests.e2e.stack import BACKENDS, CRYPTOHUB, Stack


class _Stacks:
    """The session's stacks by backend, each started on first use."""

    def __init__(
        self, pki: Pki, paths: pytest.TempPathFactory, running: ExitStack
    ) -> None:
        self._pki = pki
        self._paths = paths
        self._running = running
        self.started: dict[str, Stack] = {}

    def get(self, backend: str) -> Stack:
        if backend not in self.started:
            workdir = self._paths.mktemp(f"stack-{backend}")
            try:
                started = running_stack(self._pki, workdir, backend)
                self.started[backend] = self._running.enter_context(started)
            except BackendUnavailable as exc:
                pytest.skip(str(exc))
        return self.started[backend]


@pytest.fixture(scope="session")
def _stacks(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Stacks]:
    with ExitStack() as running:
        stacks = _Stacks(pki, tmp_path_factory, running)
        yield stacks
    # Every process has stopped: their logs are complete.
    leaks = [leak for s in stacks.started.values() for leak in find_leaks(s)]
    assert not leaks, f"secrets reached the logs: {leaks}"


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request: pytest.FixtureRequest, _stacks: _Stacks) -> Stack:
    backend: str = request.param
    return _stacks.get(backend)


@pytest.fixture(scope="session")
def simulator_stack(_stacks: _Stacks) -> Stack:
    """The CryptoHub simulator's stack: the one backend that injects faults."""
    return _stacks.get(CRYPTOHUB)


@pytest.fixture(autouse=True)
def _faults_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("stack", "simulator_stack"):
        if name in request.fixturenames:
            _clear_faults(request.getfixturevalue(name))


def _clear_faults(stack: Stack) -> None:
    if not stack.console_used:
        return
    stack.console_used = False
    if stack.injects_faults:
        # Sync on purpose: it runs after the test's own Trio run has ended,
        # for sync and async tests alike.
        status, _, err = trio.run(stack.console, "faults clear")
        stack.console_used = False  # the line above set it again
        assert status == 0, f"faults clear failed: {err}"
