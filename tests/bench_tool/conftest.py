"""Fixtures for the load tool's tests: a fake XKS proxy over real (m)TLS."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio

from fixtures.pki import Pki
from tests.bench_tool.fake_proxy import FakeProxy, serve_fake_proxy, server_context


@dataclass
class RunningProxy:
    proxy: FakeProxy
    port: int

    @property
    def endpoint(self) -> str:
        return f"https://localhost:{self.port}"


@pytest.fixture
async def fake_proxy(nursery: trio.Nursery, pki: Pki) -> RunningProxy:
    """A fake proxy requiring a KMS client certificate (mTLS), on port 0."""
    proxy = FakeProxy()
    port = await nursery.start(
        serve_fake_proxy, proxy, server_context(pki, mutual=True)
    )
    return RunningProxy(proxy, port)
