"""Test-suite wide configuration.

CI sets ``XKS_FORBID_SKIPS=1``: on a machine that CI provisions, every
dependency the suite needs (softhsm2, openssl, ssh) is installed, so a skipped
test means a broken install step, and the run must fail rather than look green.
"""

from __future__ import annotations

import os

import pytest

from fixtures.pki import Pki, mint

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("XKS_FORBID_SKIPS") == "1" and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("XKS_FORBID_SKIPS") == "1" and _skipped:
        terminalreporter.write_line(
            f"XKS_FORBID_SKIPS: {len(_skipped)} test(s) skipped; CI must "
            "install everything the suite needs:",
            red=True,
        )
        for nodeid in _skipped:
            terminalreporter.write_line(f"  {nodeid}", red=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The development PKI, minted once per test session into a temp folder."""
    return mint(tmp_path_factory.mktemp("pki"), fqdn="xks.example.test")
