"""Secondary authorization on request metadata (spec, "Authorization").

The spec leaves the policy language to each proxy (Appendix B). Ours is an
ordered list of rules per keystore; the first rule whose every condition
holds decides, and if none does the keystore's default effect applies.

A rule's conditions each name one request field and a list of patterns; the
condition holds when the field is present and matches any of its patterns. A
condition left out (empty list) holds for every request. The fields:

    keys            the external key id from the URI
    operations      the XKS API: metadata, encrypt, decrypt
    principals      requestMetadata.awsPrincipalArn
    kms_key_arns    requestMetadata.kmsKeyArn
    kms_operations  requestMetadata.kmsOperation
    via_services    requestMetadata.kmsViaService
    source_vpcs     requestMetadata.awsSourceVpc
    source_vpces    requestMetadata.awsSourceVpce

Patterns are globs: ``*`` matches any run of characters (``:`` and ``/``
included), ``?`` any one character, everything else itself. Matching is
anchored at both ends and case-sensitive, as ARNs are.

GetHealthStatus is never subject to this ("This API MUST be excluded from
secondary authorization").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sidecar.xks.errors import AccessDeniedException
from sidecar.xks.messages import RequestMetadata
from sidecar.xks.routes import Operation


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One anchored, case-sensitive regex for any of ``patterns``, or None."""
    alternatives = [_glob_to_regex(p) for p in patterns]
    if not alternatives:
        return None
    return re.compile("|".join(alternatives), re.DOTALL)


def _glob_to_regex(pattern: str) -> str:
    if not pattern:
        raise ValueError("an empty pattern would match nothing; leave it out")
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return "(?:" + "".join(parts) + ")"


# Rule condition name → how to read the value from a request.
CONDITIONS = (
    "keys",
    "operations",
    "principals",
    "kms_key_arns",
    "kms_operations",
    "via_services",
    "source_vpcs",
    "source_vpces",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy statement. Build with ``Rule.create`` or ``rule_from_mapping``."""

    name: str
    effect: Effect
    # (condition name, compiled patterns), only the conditions given.
    conditions: tuple[tuple[str, re.Pattern[str]], ...] = field(repr=False)

    @classmethod
    def create(cls, name: str, effect: Effect, **patterns: Sequence[str]) -> Rule:
        unknown = set(patterns) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"rule {name!r}: unknown condition {sorted(unknown)}")
        compiled = []
        for condition in CONDITIONS:
            regex = compile_globs(patterns.get(condition, ()))
            if regex is not None:
                compiled.append((condition, regex))
        return cls(name, effect, tuple(compiled))

    def matches(self, facts: Mapping[str, str | None]) -> bool:
        for condition, regex in self.conditions:
            value = facts[condition]
            if value is None or regex.fullmatch(value) is None:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome; ``rule`` names the deciding rule, None for the default."""

    allowed: bool
    rule: str | None


HEALTH_EXEMPT = Decision(allowed=True, rule=None)
_DEFAULT_ALLOW = Decision(allowed=True, rule=None)
_DEFAULT_DENY = Decision(allowed=False, rule=None)


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    default: Effect = Effect.ALLOW

    def decide(
        self, operation: Operation, key_id: str | None, metadata: RequestMetadata
    ) -> Decision:
        """First matching rule wins; health is always allowed."""
        if operation is Operation.GET_HEALTH_STATUS:
            return HEALTH_EXEMPT
        if not self.rules:
            # No rule to match: the facts need not be gathered (most
            # keystores have no policy; this runs on every request).
            return _DEFAULT_ALLOW if self.default is Effect.ALLOW else _DEFAULT_DENY
        facts = _facts(operation, key_id, metadata)
        for rule in self.rules:
            if rule.matches(facts):
                return Decision(rule.effect is Effect.ALLOW, rule.name)
        return Decision(self.default is Effect.ALLOW, None)

    def authorize(
        self, operation: Operation, key_id: str | None, metadata: RequestMetadata
    ) -> Decision:
        """``decide``, raising AccessDeniedException on a deny.

        The caller sees the generic message; the deciding rule goes into
        ``reason`` so the log can name it (spec, "Logging").
        """
        decision = self.decide(operation, key_id, metadata)
        if not decision.allowed:
            rule = decision.rule or "default effect"
            raise AccessDeniedException(reason=f"denied by policy: {rule}")
        return decision


def _facts(
    operation: Operation, key_id: str | None, metadata: RequestMetadata
) -> dict[str, str | None]:
    return {
        "keys": key_id,
        "operations": operation.value,
        "principals": metadata.aws_principal_arn,
        "kms_key_arns": metadata.kms_key_arn,
        "kms_operations": metadata.kms_operation,
        "via_services": metadata.kms_via_service,
        "source_vpcs": metadata.aws_source_vpc,
        "source_vpces": metadata.aws_source_vpce,
    }


def rule_from_mapping(data: Mapping[str, object]) -> Rule:
    """Build a rule from configuration data (e.g. a TOML table).

    Raises ValueError naming the key at fault.
    """
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("policy rule: 'name' must be a non-empty string")
    try:
        effect = Effect(data.get("effect"))
    except ValueError:
        raise ValueError(
            f"policy rule {name!r}: 'effect' must be 'allow' or 'deny'"
        ) from None
    patterns: dict[str, Sequence[str]] = {}
    for key, value in data.items():
        if key in ("name", "effect"):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"policy rule {name!r}: {key!r} must be a list of strings")
        patterns[key] = value
    return Rule.create(name, effect, **patterns)


def policy_from_mapping(default: str, rules: Iterable[Mapping[str, object]]) -> Policy:
    """A keystore's policy from configuration data; ValueError on bad input."""
    try:
        default_effect = Effect(default)
    except ValueError:
        raise ValueError("policy: 'default' must be 'allow' or 'deny'") from None
    built = tuple(rule_from_mapping(rule) for rule in rules)
    names = [rule.name for rule in built]
    if len(set(names)) != len(names):
        raise ValueError("policy: rule names must be unique (logs name them)")
    return Policy(built, default_effect)
