"""Response encoding: compact one-line JSON with the spec's field names."""

from __future__ import annotations

import base64
import json

import pytest

from sidecar.xks.responses import (
    DecryptResponse,
    EkmNode,
    EncryptResponse,
    HealthStatusResponse,
    KeyMetadataResponse,
)


def test_encrypt_response_reproduces_the_spec_example() -> None:
    response = EncryptResponse(
        ciphertext=base64.b64decode("ghxkK1txeDNn3q8Y"),
        initialization_vector=base64.b64decode("HMrlRw85cAJUd5Ax"),
        authentication_tag=base64.b64decode("vBxN2ncH1oEkR8WVXpmyYQ=="),
        ciphertext_metadata=b"key_version=1",
        ciphertext_data_integrity_value="qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=",
    )
    encoded = response.to_json()
    assert b"\n" not in encoded
    assert b" " not in encoded
    assert json.loads(encoded) == {
        "authenticationTag": "vBxN2ncH1oEkR8WVXpmyYQ==",
        "ciphertext": "ghxkK1txeDNn3q8Y",
        "ciphertextDataIntegrityValue": "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=",
        "ciphertextMetadata": "a2V5X3ZlcnNpb249MQ==",
        "initializationVector": "HMrlRw85cAJUd5Ax",
    }


def test_encrypt_response_leaves_out_absent_optional_fields() -> None:
    encoded = EncryptResponse(b"c", b"i" * 12, b"t" * 16).to_json()
    assert set(json.loads(encoded)) == {
        "ciphertext",
        "initializationVector",
        "authenticationTag",
    }


def test_decrypt_response_and_its_repr() -> None:
    response = DecryptResponse(b"Hello World!")
    assert response.to_json() == b'{"plaintext":"SGVsbG8gV29ybGQh"}'
    assert "Hello" not in repr(response)


def test_key_metadata_response_matches_the_spec_shape() -> None:
    encoded = KeyMetadataResponse(
        "AES_256", ("ENCRYPT", "DECRYPT"), "ENABLED"
    ).to_json()
    assert encoded == (
        b'{"keySpec":"AES_256","keyUsage":["ENCRYPT","DECRYPT"],"keyStatus":"ENABLED"}'
    )


def test_key_metadata_response_enforces_spec_limits() -> None:
    with pytest.raises(ValueError, match="keyUsage"):
        KeyMetadataResponse("AES_256", tuple(f"U{i}" for i in range(11)), "ENABLED")
    with pytest.raises(ValueError, match="keyStatus"):
        KeyMetadataResponse("AES_256", (), "PENDING")


def test_health_response_matches_the_spec_example() -> None:
    response = HealthStatusResponse(
        2,
        "Acme Corp",
        "Acme XKS Proxy 1.0",
        "Thales Group",
        (
            EkmNode("hsm-id-1", "Luna 5.0", "DEGRADED"),
            EkmNode("hsm-id-2", "Luna 5.1", "ACTIVE"),
        ),
    )
    assert json.loads(response.to_json()) == {
        "xksProxyFleetSize": 2,
        "xksProxyVendor": "Acme Corp",
        "xksProxyModel": "Acme XKS Proxy 1.0",
        "ekmVendor": "Thales Group",
        "ekmFleetDetails": [
            {"id": "hsm-id-1", "model": "Luna 5.0", "healthStatus": "DEGRADED"},
            {"id": "hsm-id-2", "model": "Luna 5.1", "healthStatus": "ACTIVE"},
        ],
    }


def test_health_response_escapes_arbitrary_text_safely() -> None:
    node = EkmNode('id "1"\n', "Model é", "ACTIVE")
    encoded = HealthStatusResponse(1, "V", "M", "E", (node,)).to_json()
    assert b"\n" not in encoded
    assert json.loads(encoded)["ekmFleetDetails"][0]["model"] == "Model é"


@pytest.mark.parametrize("count", [0, 11])
def test_health_response_needs_one_to_ten_nodes(count: int) -> None:
    nodes = tuple(EkmNode(f"n{i}", "m", "ACTIVE") for i in range(count))
    with pytest.raises(ValueError, match="ekmFleetDetails"):
        HealthStatusResponse(1, "V", "M", "E", nodes)


def test_health_response_checks_fleet_size_and_statuses() -> None:
    with pytest.raises(ValueError, match="xksProxyFleetSize"):
        HealthStatusResponse(0, "V", "M", "E", (EkmNode("n", "m", "ACTIVE"),))
    with pytest.raises(ValueError, match="healthStatus"):
        EkmNode("n", "m", "HEALTHY")
