"""Classify what came back for one request, the way KMS would read it.

Spec, Error codes: an error answer is an HTTP status with a JSON body whose
``errorName`` names the error; an error without such a body, or a malformed
success, is what KMS reports as "cannot interpret the response". So:

=================  =========================================================
``OK``             200 and the body holds what the spec requires (``checks``)
``ERROR``          a JSON ``errorName``; the detail is that name
``INVALID``        anything else the server answered; the detail says what
``TIMEOUT``        no answer within the timeout, whatever came later
``TRANSPORT``      the connection failed (connect, TLS, reset, framing)
``DROPPED``        never sent: the client's cap on outstanding requests
=================  =========================================================
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

from sidecar.bench.checks import check_success
from sidecar.bench.payloads import Body


class Kind(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    INVALID = "invalid_response"
    TIMEOUT = "timeout"
    TRANSPORT = "transport_error"
    DROPPED = "dropped_by_client"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    detail: str = ""  # errorName, or the reason of INVALID / TRANSPORT


OK = Outcome(Kind.OK)
DROPPED = Outcome(Kind.DROPPED)
# The three ways to be a TIMEOUT (see ``scheduler``).
LATE = Outcome(Kind.TIMEOUT, "answered after the timeout")
GAVE_UP = Outcome(Kind.TIMEOUT, "no answer by the give-up time")
EXPIRED = Outcome(Kind.TIMEOUT, "expired waiting for a free connection")

# errorName values are counted as keys of the report; anything that does not
# look like an exception name is reported as invalid rather than echoed.
_ERROR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


def classify(status: int, body: bytes, sent: Body) -> Outcome:
    """The outcome of a response with ``status`` and ``body`` to ``sent``."""
    doc = _json_object(body)
    if status == 200:
        if doc is None:
            return Outcome(Kind.INVALID, "HTTP 200 body is not a JSON object")
        problem = check_success(sent, doc)
        return OK if problem is None else Outcome(Kind.INVALID, problem)
    name = None if doc is None else doc.get("errorName")
    if isinstance(name, str) and _ERROR_NAME.fullmatch(name):
        return Outcome(Kind.ERROR, name)
    return Outcome(Kind.INVALID, f"HTTP {status} without a valid errorName")


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        # UTF-8 first: ``json.loads(bytes)`` guesses the encoding in Python
        # (6.7 -> 3.4 us for an Encrypt's answer). Whatever this parses,
        # json.loads parses alike (JSON text holds no NUL to mislead the
        # guess, and this refuses a BOM), so it only falls back on failure.
        doc = _DECODER.decode(body.decode())
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        try:
            doc = json.loads(body)  # UTF-16, UTF-32, a BOM, lone surrogates
        except ValueError:
            return None
    return doc if isinstance(doc, dict) else None


_DECODER = json.JSONDecoder()
