"""Parameters that cannot go into a certificate are refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.errors import InvalidParameters
from fixtures.params import Parameters
from fixtures.pki import mint


@pytest.mark.parametrize(
    "fqdn",
    ["", "127.0.0.1", "xks..example.test", "-xks.example.test", "xks_1.example.test",
     "xks.example.test.", "a" * 64 + ".test", "xks example.test", "*.example.test"],
)  # fmt: skip
def test_malformed_fqdn_is_refused(fqdn: str) -> None:
    with pytest.raises(InvalidParameters, match="not a DNS host name"):
        Parameters.checked(fqdn, "us-east-1")


@pytest.mark.parametrize(
    "region", ["", "us-east", "useast1", "us-east-1a", "us east 1"]
)
def test_malformed_region_is_refused(region: str) -> None:
    with pytest.raises(InvalidParameters, match="not an AWS region"):
        Parameters.checked("xks.example.test", region)


@pytest.mark.parametrize(
    ("fqdn", "region"),
    [("XKS.Example.Test", "US-EAST-1"), ("localhost", "us-gov-west-1"),
     ("xks-1.corp.example.com", "cn-northwest-1")],
)  # fmt: skip
def test_wellformed_parameters_are_accepted_in_lower_case(
    fqdn: str, region: str
) -> None:
    params = Parameters.checked(fqdn, region)

    assert (params.fqdn, params.region) == (fqdn.lower(), region.lower())


def test_kms_client_cn_follows_the_region() -> None:
    params = Parameters.checked("xks.example.test", "ap-southeast-2")

    assert params.kms_client_cn == "cks.kms.ap-southeast-2.amazonaws.com"


def test_malformed_parameters_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameters):
        mint(tmp_path, region="nowhere")

    assert list(tmp_path.iterdir()) == []
