"""Secondary authorization on request metadata (spec, Authorization)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.xks.errors import AccessDeniedException
from sidecar.xks.messages import RequestMetadata
from sidecar.xks.policy import (
    Decision,
    Effect,
    Policy,
    Rule,
    compile_globs,
    policy_from_mapping,
    rule_from_mapping,
)
from sidecar.xks.routes import Operation

ALICE = "arn:aws:iam::123456789012:user/Alice"
KEY_ARN = "arn:aws:kms:us-east-2:123456789012:key/1234abcd"
METADATA = RequestMetadata(
    kms_request_id="4112f4d6",
    kms_operation="Encrypt",
    aws_principal_arn=ALICE,
    kms_key_arn=KEY_ARN,
    kms_via_service="ebs",
)


def _with(**changes: Any) -> RequestMetadata:
    return dataclasses.replace(METADATA, **changes)


def test_first_matching_rule_decides_and_is_named() -> None:
    policy = Policy(
        (
            Rule.create("deny-bob", Effect.DENY, principals=["*:user/Bob"]),
            Rule.create(
                "allow-account", Effect.ALLOW, principals=["*::123456789012:*"]
            ),
            Rule.create("deny-all", Effect.DENY),
        ),
        default=Effect.DENY,
    )
    decide = policy.decide
    assert decide(Operation.ENCRYPT, "k", METADATA) == Decision(True, "allow-account")
    bob = _with(aws_principal_arn="arn:aws:iam::123456789012:user/Bob")
    assert decide(Operation.ENCRYPT, "k", bob) == Decision(False, "deny-bob")
    stranger = _with(aws_principal_arn="arn:aws:iam::999999999999:user/Eve")
    assert decide(Operation.ENCRYPT, "k", stranger) == Decision(False, "deny-all")


@pytest.mark.parametrize("default", [Effect.ALLOW, Effect.DENY])
def test_default_effect_applies_when_no_rule_matches(default: Effect) -> None:
    policy = Policy((Rule.create("r", Effect.DENY, keys=["other"]),), default=default)
    decision = policy.decide(Operation.DECRYPT, "k", METADATA)
    assert decision == Decision(default is Effect.ALLOW, None)


def test_every_condition_of_a_rule_must_hold() -> None:
    rule = Rule.create(
        "ebs-encrypt",
        Effect.ALLOW,
        principals=[ALICE],
        kms_operations=["Encrypt", "GenerateDataKey*"],
        via_services=["ebs"],
        keys=["k-*"],
        operations=["encrypt"],
        kms_key_arns=["arn:aws:kms:us-east-2:*"],
    )
    policy = Policy((rule,), default=Effect.DENY)
    assert policy.decide(Operation.ENCRYPT, "k-1", METADATA).allowed
    assert not policy.decide(Operation.DECRYPT, "k-1", METADATA).allowed
    assert not policy.decide(Operation.ENCRYPT, "x-1", METADATA).allowed
    for change in (
        {"kms_via_service": "s3"},
        {"kms_via_service": None},
        {"kms_operation": "ReEncrypt"},
        {"kms_key_arn": "arn:aws:kms:us-west-2:123456789012:key/1"},
    ):
        assert not policy.decide(Operation.ENCRYPT, "k-1", _with(**change)).allowed
    generate = _with(kms_operation="GenerateDataKeyWithoutPlaintext")
    assert policy.decide(Operation.ENCRYPT, "k-1", generate).allowed


def test_vpc_conditions_need_the_field_present() -> None:
    rule = Rule.create(
        "vpc", Effect.ALLOW, source_vpcs=["vpc-1*"], source_vpces=["vpce-9"]
    )
    policy = Policy((rule,), default=Effect.DENY)
    assert not policy.decide(Operation.ENCRYPT, "k", METADATA).allowed
    inside = _with(aws_source_vpc="vpc-123", aws_source_vpce="vpce-9")
    assert policy.decide(Operation.ENCRYPT, "k", inside).allowed


def test_health_is_never_subject_to_policy() -> None:
    policy = Policy((Rule.create("deny-all", Effect.DENY),), default=Effect.DENY)
    health = RequestMetadata(kms_request_id="r", kms_operation="KmsHealthCheck")
    assert policy.decide(Operation.GET_HEALTH_STATUS, None, health).allowed
    assert policy.authorize(Operation.GET_HEALTH_STATUS, None, health).allowed


def test_deny_raises_access_denied_with_a_generic_message() -> None:
    policy = Policy((Rule.create("no-decrypt", Effect.DENY, operations=["decrypt"]),))
    with pytest.raises(AccessDeniedException) as caught:
        policy.authorize(Operation.DECRYPT, "k", METADATA)
    assert caught.value.message == AccessDeniedException.default_message
    assert caught.value.reason is not None
    assert "no-decrypt" in caught.value.reason
    assert policy.authorize(Operation.ENCRYPT, "k", METADATA) == Decision(True, None)


def test_default_deny_names_itself_in_the_reason() -> None:
    with pytest.raises(AccessDeniedException) as caught:
        Policy((), default=Effect.DENY).authorize(Operation.ENCRYPT, "k", METADATA)
    assert caught.value.reason == "denied by policy: default effect"


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("arn:aws:iam::*:user/Alice", ALICE, True),
        ("arn:aws:iam::123456789012:user/*", ALICE, True),
        ("arn:aws:iam::123456789012:user/Alic?", ALICE, True),
        ("arn:aws:iam::123456789012:user/alice", ALICE, False),  # case-sensitive
        ("arn:aws:iam::123456789012:user/Ali", ALICE, False),  # anchored at end
        ("iam::123456789012:user/Alice", ALICE, False),  # anchored at start
        ("arn:aws:iam::123456789012:user/[A]lice", ALICE, False),  # no classes
        ("a.c", "abc", False),  # "." is literal
        ("a+", "aa", False),
        ("*", "", True),
        ("*", "line\nbreak", True),
    ],
)
def test_glob_matching(pattern: str, value: str, matches: bool) -> None:
    regex = compile_globs([pattern])
    assert regex is not None
    assert (regex.fullmatch(value) is not None) is matches


@given(st.text(max_size=20), st.text(max_size=20))
def test_a_pattern_without_wildcards_matches_only_itself(
    pattern: str, value: str
) -> None:
    literal = pattern.replace("*", "").replace("?", "")
    if not literal:
        return
    regex = compile_globs([literal])
    assert regex is not None
    assert (regex.fullmatch(value) is not None) is (value == literal)


def test_rules_from_configuration_data() -> None:
    policy = policy_from_mapping(
        "deny",
        [
            {"name": "alice", "effect": "allow", "principals": [ALICE]},
            {"name": "rest", "effect": "deny"},
        ],
    )
    assert policy.decide(Operation.ENCRYPT, "k", METADATA) == Decision(True, "alice")
    assert policy.default is Effect.DENY


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"effect": "allow"}, "'name'"),
        ({"name": "r", "effect": "maybe"}, "'effect'"),
        ({"name": "r", "effect": "allow", "principals": ALICE}, "'principals'"),
        ({"name": "r", "effect": "allow", "principals": [1]}, "'principals'"),
        ({"name": "r", "effect": "allow", "colour": ["red"]}, "colour"),
        ({"name": "r", "effect": "allow", "keys": [""]}, "empty pattern"),
    ],
)
def test_bad_rule_data_names_the_problem(
    data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        rule_from_mapping(data)


def test_bad_policy_data_is_refused() -> None:
    with pytest.raises(ValueError, match="default"):
        policy_from_mapping("sometimes", [])
    rule = {"name": "same", "effect": "deny"}
    with pytest.raises(ValueError, match="unique"):
        policy_from_mapping("allow", [rule, rule])
