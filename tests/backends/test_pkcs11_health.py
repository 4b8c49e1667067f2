"""The PKCS#11 backend's deep health probe and its IV sources, on SoftHSMv2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.backends.base import NodeState
from sidecar.backends.pkcs11 import IvSource, Pkcs11Backend, open_pkcs11_backend
from sidecar.xks.envelope import encode_metadata, hsm_aad
from sidecar.xks.errors import InternalException
from tests.backends.softhsm import TOKEN_LABEL, SoftHsm, make_template, make_token

HEALTH_KEY = "xks-health-check"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> SoftHsm:
    return make_token(tmp_path, monkeypatch, copy_of=template)


@pytest.fixture
async def backend(hsm: SoftHsm) -> AsyncIterator[Pkcs11Backend]:
    async with open_pkcs11_backend(hsm.settings(health_slow_s=5.0)) as opened:
        yield opened


async def test_a_healthy_token_is_active_and_says_what_it_is(
    backend: Pkcs11Backend,
) -> None:
    [status] = await backend.probe(HEALTH_KEY)

    assert (status.state, status.detail) == (NodeState.ACTIVE, "")
    assert status.name == TOKEN_LABEL
    assert status.node_id  # the token's serial number
    assert status.model == "SoftHSM project SoftHSM v2"
    assert status.version is not None
    assert status.version[0].isdigit()
    assert status.latency_s > 0


async def test_a_missing_health_key_makes_the_token_degraded(
    backend: Pkcs11Backend,
) -> None:
    [status] = await backend.probe("no-such-health-key")

    assert status.state is NodeState.DEGRADED
    assert "no-such-health-key" in status.detail
    assert status.node_id is not None  # the token itself answered


async def test_a_slow_probe_makes_the_token_degraded(hsm: SoftHsm) -> None:
    async with open_pkcs11_backend(hsm.settings(health_slow_s=1e-6)) as backend:
        [status] = await backend.probe(HEALTH_KEY)

    assert status.state is NodeState.DEGRADED
    assert status.detail.startswith("slow")


async def test_a_token_that_is_not_there_is_unavailable(hsm: SoftHsm) -> None:
    settings = hsm.settings(token_label="no-such-token")
    async with open_pkcs11_backend(settings) as backend:  # starts anyway
        [status] = await backend.probe(HEALTH_KEY)

    assert status.state is NodeState.UNAVAILABLE
    assert status.name == "no-such-token"
    assert status.node_id is None


async def test_a_closed_backend_is_unavailable(hsm: SoftHsm) -> None:
    async with open_pkcs11_backend(hsm.settings()) as backend:
        pass

    [status] = await backend.probe(HEALTH_KEY)

    assert status.state is NodeState.UNAVAILABLE


async def test_softhsm_does_not_draw_gcm_ivs_so_token_mode_refuses(
    hsm: SoftHsm,
) -> None:
    # SoftHSMv2 uses CK_GCM_PARAMS.pIv as given; with iv_source "token" the
    # IV stays all zero, and the backend must refuse rather than return it.
    aad = hsm_aad(b"", encode_metadata(1))
    async with open_pkcs11_backend(hsm.settings(iv_source=IvSource.TOKEN)) as backend:
        with pytest.raises(InternalException) as caught:
            await backend.encrypt("foo", b"secret", aad)
        [status] = await backend.probe(HEALTH_KEY)

    assert "did not write an IV" in (caught.value.reason or "")
    assert status.state is NodeState.DEGRADED
