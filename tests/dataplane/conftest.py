"""Fixtures of the data plane tests."""

from __future__ import annotations

import pytest

from sidecar.dataplane import ParserName


@pytest.fixture(params=[ParserName.HTTPTOOLS, ParserName.H11], ids=lambda p: p.value)
def parser(request: pytest.FixtureRequest) -> ParserName:
    """Each HTTP behaviour test runs against both parser libraries."""
    assert isinstance(request.param, ParserName)
    return request.param
