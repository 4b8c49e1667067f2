"""Routing of XKS request targets to keystore, operation and key id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.xks.errors import InvalidUriPathException, MethodNotAllowed
from sidecar.xks.routes import Operation, Route, Router, validate_uri_path

ROUTER = Router(
    [
        ("root", "/kms/xks/v1"),
        ("tenant-a", "/tenants/a/kms/xks/v1"),
        ("nested", "/tenants/a/kms/xks/v1/keys/x/kms/xks/v1"),
    ]
)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/kms/xks/v1/health", Route("root", Operation.GET_HEALTH_STATUS, None)),
        (
            "/kms/xks/v1/keys/foo/metadata",
            Route("root", Operation.GET_KEY_METADATA, "foo"),
        ),
        (
            "/tenants/a/kms/xks/v1/keys/foo.bar-1_x/encrypt",
            Route("tenant-a", Operation.ENCRYPT, "foo.bar-1_x"),
        ),
        (
            "/tenants/a/kms/xks/v1/keys/K/decrypt",
            Route("tenant-a", Operation.DECRYPT, "K"),
        ),
        (
            "/tenants/a/kms/xks/v1/keys/x/kms/xks/v1/health",
            Route("nested", Operation.GET_HEALTH_STATUS, None),
        ),
    ],
)
def test_post_to_an_api_uri_resolves(target: str, expected: Route) -> None:
    assert ROUTER.resolve("POST", target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "/kms/xks/v1/health",
        "/kms/xks/v1/keys/foo/encrypt",
        "/tenants/a/kms/xks/v1/keys/foo/metadata",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_on_an_api_uri_get_405(method: str, target: str) -> None:
    with pytest.raises(MethodNotAllowed):
        ROUTER.resolve(method, target)


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "",
        "/kms/xks/v1",
        "/kms/xks/v1/",
        "/kms/xks/v1/health/",
        "/kms/xks/v2/health",
        "/KMS/xks/v1/health",
        "/other/kms/xks/v1/health",
        "/tenants/kms/xks/v1/health",
        "/kms/xks/v1/keys/foo",
        "/kms/xks/v1/keys/foo/",
        "/kms/xks/v1/keys/foo/sign",
        "/kms/xks/v1/keys//encrypt",
        "/kms/xks/v1/keys/a/b/encrypt",
        "/kms/xks/v1/keys/foo%2Fbar/encrypt",
        "/kms/xks/v1/keys/f%6Fo/encrypt",
        "/kms/xks/v1/keys/./encrypt",
        "/kms/xks/v1/keys/../encrypt",
        "/kms/xks/v1/key/foo/encrypt",
        "/kms/xks/v1/keys/foo/ENCRYPT",
        "//kms/xks/v1/health",
        "https://xks.example.test/kms/xks/v1/health",
        "*",
    ],
)
def test_anything_else_is_an_invalid_uri_path(target: str) -> None:
    with pytest.raises(InvalidUriPathException):
        ROUTER.resolve("POST", target)


def test_invalid_path_wins_over_wrong_method() -> None:
    with pytest.raises(InvalidUriPathException):
        ROUTER.resolve("GET", "/nowhere")


def test_query_strings_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(InvalidUriPathException, match="query"):
        ROUTER.resolve("POST", "/kms/xks/v1/health?x=1")
    with pytest.raises(InvalidUriPathException, match="query"):
        ROUTER.resolve("POST", "/kms/xks/v1/health?")


def test_key_id_of_128_characters_is_accepted_and_129_is_not() -> None:
    assert ROUTER.resolve("POST", f"/kms/xks/v1/keys/{'k' * 128}/encrypt")
    with pytest.raises(InvalidUriPathException):
        ROUTER.resolve("POST", f"/kms/xks/v1/keys/{'k' * 129}/encrypt")


def test_total_uri_over_256_characters_is_rejected() -> None:
    prefix = "/" + "p" * 116 + "/kms/xks/v1"  # 128 characters
    router = Router([("long", prefix)])
    fits = f"{prefix}/keys/{'k' * 100}/encrypt"  # 128 + 6 + 100 + 8 = 242
    assert router.resolve("POST", fits).keystore == "long"
    with pytest.raises(InvalidUriPathException, match="256"):
        router.resolve("POST", f"{prefix}/keys/{'k' * 120}/metadata")
    # With the Host, "https://" + host + path counts: 8 + 7 + 242 > 256.
    with pytest.raises(InvalidUriPathException, match="256"):
        router.resolve("POST", fits, host="a.b.com")
    assert router.resolve("POST", fits, host="a.b")


@pytest.mark.parametrize(
    "uri_path",
    [
        "/kms/xks/v1",
        "/a/kms/xks/v1",
        "/keystores/4a0d79d6-1d1b-49fd-9dbe-799cb9c0fb3f/kms/xks/v1",
        "/Under_score/kms/xks/v1",
        "/" + "p" * 116 + "/kms/xks/v1",
    ],
)
def test_valid_xks_proxy_uri_paths_are_accepted(uri_path: str) -> None:
    assert validate_uri_path(uri_path) == uri_path


@pytest.mark.parametrize(
    "uri_path",
    [
        "",
        "kms/xks/v1",
        "/kms/xks/v2",
        "/kms/xks/v1/",
        "/a.b/kms/xks/v1",
        "/a b/kms/xks/v1",
        "/a%20/kms/xks/v1",
        "//kms/xks/v1",
        "/a//kms/xks/v1",
        "/prefix",
        "/" + "p" * 117 + "/kms/xks/v1",  # 129 characters
    ],
)
def test_invalid_xks_proxy_uri_paths_are_refused(uri_path: str) -> None:
    with pytest.raises(ValueError, match="XksProxyUriPath"):
        validate_uri_path(uri_path)
    with pytest.raises(ValueError, match="XksProxyUriPath"):
        Router([("ks", uri_path)])


def test_two_keystores_cannot_share_a_uri_path() -> None:
    with pytest.raises(ValueError, match="share"):
        Router([("a", "/x/kms/xks/v1"), ("b", "/x/kms/xks/v1")])


def test_a_keystore_name_cannot_be_used_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        Router([("a", "/x/kms/xks/v1"), ("a", "/y/kms/xks/v1")])


def test_with_no_keystores_everything_is_invalid() -> None:
    with pytest.raises(InvalidUriPathException):
        Router([]).resolve("POST", "/kms/xks/v1/health")


# --- properties --------------------------------------------------------------

_segment = st.text("abcXYZ019_-", min_size=1, max_size=8)
_prefixes = st.lists(_segment, max_size=4).map(
    lambda parts: "".join("/" + p for p in parts) + "/kms/xks/v1"
)
_key_ids = st.text("abzAZ09._-", min_size=1, max_size=40).filter(
    lambda k: k not in (".", "..")
)
_operations = st.sampled_from(["metadata", "encrypt", "decrypt"])


@given(st.lists(_prefixes, min_size=1, max_size=5, unique=True), st.data())
def test_every_configured_keystore_gets_exactly_its_own_requests(
    prefixes: list[str], data: st.DataObject
) -> None:
    router = Router((f"ks{i}", p) for i, p in enumerate(prefixes))
    index = data.draw(st.integers(0, len(prefixes) - 1))
    key_id = data.draw(_key_ids)
    op = data.draw(_operations)
    route = router.resolve("POST", f"{prefixes[index]}/keys/{key_id}/{op}")
    assert route == Route(f"ks{index}", Operation(op), key_id)
    health = router.resolve("POST", f"{prefixes[index]}/health")
    assert health == Route(f"ks{index}", Operation.GET_HEALTH_STATUS, None)


@given(st.text(max_size=300), st.sampled_from(["POST", "GET", "PATCH"]))
def test_resolve_only_ever_routes_or_raises_an_http_error(
    target: str, method: str
) -> None:
    try:
        route = ROUTER.resolve(method, target)
    except (InvalidUriPathException, MethodNotAllowed):
        return
    assert method == "POST"
    assert target.endswith("/" + route.operation.value)
    if route.external_key_id is not None:
        assert f"/keys/{route.external_key_id}/" in target
