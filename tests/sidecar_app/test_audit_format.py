"""The request line's text is what the plain ``json.dumps`` formatting gave.

``AuditRecord.fields`` and ``JsonLineFormatter`` take shortcuts on the hot
path (fields read one by one, the JSON encoder called directly); these pin
the output byte for byte against the straightforward formatting.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest

from sidecar import audit
from sidecar.audit import AuditRecord, JsonLineFormatter


def _reference_fields(
    record: AuditRecord, outcome: str, status: int, latency_ms: float
) -> dict[str, object]:
    line: dict[str, object] = {name: value for name, value in record.metadata if value}
    for name in audit._FIELD_ORDER:
        value = getattr(record, name)
        if value is not None:
            line[name] = value
    line.update(outcome=outcome, status=status, latency_ms=round(latency_ms, 3))
    return line


def _reference_line(record: logging.LogRecord) -> str:
    """The formatting before the shortcuts: everything through json.dumps."""
    line: dict[str, object] = {
        "ts": audit._utc_timestamp(record.created),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    line.update(getattr(record, "audit", {}))
    if record.exc_info:
        line["exc"] = JsonLineFormatter().formatException(record.exc_info)
    return json.dumps(line, separators=(",", ":"), default=str)


def _full_record() -> AuditRecord:
    record = AuditRecord("192.0.2.1:443", "cks.kms.us-east-1.amazonaws.com")
    record.keystore = "dev"
    record.operation = "encrypt"
    record.external_key_id = "foo"
    record.access_key_id = "AKIAEXAMPLE"
    record.metadata = (
        ("kmsRequestId", "r-1"),
        ("kmsOperation", "Encrypt"),
        ("awsPrincipalArn", 'arn:aws:iam::1:user/"q\\uo\u00e9te\u2028'),
        ("kmsKeyArn", None),
        ("kmsViaService", ""),
    )
    record.hsm_node = "hub-1"
    record.reason = "denied by policy: r\u00e8gle\n\x00"
    return record


@pytest.mark.parametrize("outcome", ["ok", "AccessDeniedException"])
@pytest.mark.parametrize("latency_ms", [0.0, 0.1234567, 1e-7, 12345.6785])
def test_fields_keep_their_order_and_values(outcome: str, latency_ms: float) -> None:
    record = _full_record()

    fields = record.fields(outcome, 403, latency_ms)

    assert list(fields.items()) == list(
        _reference_fields(record, outcome, 403, latency_ms).items()
    )


def test_fields_of_an_empty_record_are_the_outcome_only() -> None:
    fields = AuditRecord(None, None).fields("cancelled", 0, 2.0)

    assert list(fields) == ["outcome", "status", "latency_ms"]


def _line(audit_fields: dict[str, object], exc: bool = False) -> logging.LogRecord:
    record = logging.LogRecord(
        "sidecar.audit", logging.INFO, __file__, 1, "xks request", (), None
    )
    record.audit = audit_fields
    if exc:
        try:
            int("boom \u00e9")
        except ValueError:
            record.exc_info = sys.exc_info()
    return record


@pytest.mark.parametrize(
    "audit_fields",
    [
        _full_record().fields("ok", 200, 0.25),
        {},
        {"status": 200, "flag": True, "none": None, "nan": float("nan")},
        {"inf": float("inf"), "list": ["a", 1], "nested": {"k": "\u00fc"}},
        {"object": ValueError("shown as str"), 1: "int key"},
        {"msg": "replaces the fixed one", "status": 500},
    ],
)
@pytest.mark.parametrize("exc", [False, True])
def test_json_line_is_byte_identical_to_plain_json_dumps(
    audit_fields: dict[str, object], exc: bool
) -> None:
    record = _line(audit_fields, exc)

    assert JsonLineFormatter().format(record) == _reference_line(record)


def test_formatting_leaves_the_audit_fields_unchanged() -> None:
    fields = _full_record().fields("ok", 200, 0.25)
    before = dict(fields)

    JsonLineFormatter().format(_line(fields, exc=True))
    JsonLineFormatter().format(_line(fields))

    assert fields == before


def test_a_circular_audit_field_is_refused_as_json_dumps_refuses_it() -> None:
    looped: list[object] = []
    looped.append(looped)

    with pytest.raises(ValueError, match="Circular reference"):
        JsonLineFormatter().format(_line({"loop": looped}))


def test_the_line_template_is_rebuilt_after_a_fork() -> None:
    first = audit._TEMPLATE.record()
    audit._TEMPLATE.forget()  # what os.register_at_fork runs in the child

    second = audit._TEMPLATE.record()

    assert (second.process, second.thread) == (first.process, first.thread)
    assert second.__dict__ is not first.__dict__
