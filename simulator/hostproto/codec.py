"""The host protocol's wire format: frames in, frames out, no I/O.

Both ends of the simulator link import this module (the simulator serves it,
the sidecar's CryptoHub backend speaks it), so it depends on nothing but the
standard library and holds no sockets, no event loop and no logging: bytes go
into a :class:`FrameDecoder`, events come out, and :func:`encode_frame` turns a
:class:`Frame` back into bytes. ``docs/host-protocol.md`` is the prose version.

The framing follows Futurex's public Excrypt convention::

    [AO<CMD>;<TAG><value>;<TAG><value>;...]

``[`` opens a frame, the ``AO`` tag carries the four-character command, every
field is a two-character tag, its value and a ``;``, and ``]`` closes. Values
are printable ASCII without ``;``, ``[`` or ``]``; binary values are standard
base64. The command names, tags and result codes are this simulator's own.

Two deliberate strictnesses: every field, the last included, ends with ``;``
(``[AOECHO]`` is malformed), and a tag may appear once per frame, so a reader
never has to guess which of two ``KL`` fields counts.
"""

from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass, field
from typing import Final, Literal

# Chosen to fit the XKS maxima (4300-byte plaintext, 8192-byte AAD, their
# base64 overhead, the other fields) with room to spare; not measured.
DEFAULT_MAX_FRAME_BYTES: Final = 65536


class ErrorCode(enum.StrEnum):
    """The ``ER`` result code every reply carries ("00" is success)."""

    OK = "00"
    MALFORMED_FRAME = "01"
    FRAME_TOO_LARGE = "02"
    UNKNOWN_COMMAND = "03"
    MISSING_FIELD = "04"
    INVALID_FIELD = "05"
    KEY_NOT_FOUND = "10"
    KEY_DISABLED = "11"
    USAGE_NOT_PERMITTED = "12"
    KEY_VERSION_NOT_FOUND = "13"
    DECRYPT_FAILED = "20"
    BUSY = "30"
    INJECTED_FAULT = "90"
    INTERNAL_ERROR = "99"


class Command(enum.StrEnum):
    """The commands the simulator implements."""

    ECHO = "ECHO"  # liveness: echoes DT
    NODE = "NODE"  # node identity: NI, MD, VR, SN
    KINF = "KINF"  # key information
    GCEN = "GCEN"  # AES-256-GCM encrypt; the HSM draws the IV
    GCDE = "GCDE"  # AES-256-GCM decrypt


class Tag(enum.StrEnum):
    """Field tags; a member compares equal to its two-letter string."""

    ID = "ID"  # correlation id, echoed in the reply
    ER = "ER"  # result code, see ErrorCode
    EM = "EM"  # short error message when ER != 00
    KL = "KL"  # key label (the XKS external key id)
    KU = "KU"  # key UUID
    KV = "KV"  # key version, decimal
    KS = "KS"  # key spec
    KG = "KG"  # key usages, comma separated
    ST = "ST"  # key state
    PT = "PT"  # plaintext, base64
    AD = "AD"  # additional authenticated data, base64
    IV = "IV"  # GCM IV, base64
    CT = "CT"  # ciphertext, base64
    TG = "TG"  # GCM tag, base64
    DT = "DT"  # echo data, base64
    NI = "NI"  # node id
    MD = "MD"  # model
    VR = "VR"  # version
    SN = "SN"  # serial number


# Replies to bytes whose command could not be read carry this command name.
UNREADABLE_COMMAND: Final = "ERRO"

COMMAND_TAG: Final = "AO"
_COMMAND = re.compile(r"[A-Z0-9]{4}")
# The commands this simulator implements: a set lookup settles them without
# the regex (the regex still decides every other name).
_KNOWN_COMMANDS: Final = frozenset(command.value for command in Command)
_TAG = re.compile(r"[A-Z0-9]{2}")
# Printable ASCII (0x20-0x7E) less the three framing characters ; [ ].
_VALUE = re.compile(r"[\x20-\x3a\x3c-\x5a\x5c\x5e-\x7e]*")
# The same two alphabets as bytes, for ``bytes.translate(None, allowed)``,
# which deletes the allowed bytes in one C loop: an empty result means every
# byte was allowed. About 0.8 ns a byte against the regex's 4 (and
# ``str.isprintable``'s 4), which over a 4,300-byte payload's frame was
# 22 us of the 40 a decode took (tests/bench/codec_bench.py).
_PRINTABLE_BYTES: Final = bytes(range(0x20, 0x7F))
_VALUE_BYTES: Final = _PRINTABLE_BYTES.translate(None, b";[]")
_MAX_CORRELATION_ID = 16
_TAG_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# What _TAG accepts, but for the command tag, as a set: see _fields_valid.
_VALID_TAGS: Final = frozenset(
    first + second for first in _TAG_CHARACTERS for second in _TAG_CHARACTERS
) - {COMMAND_TAG}
_MAX_DECIMAL_DIGITS = 9  # up to 999,999,999: ample for key versions
# Plain strings for the tags the codec itself reads: reading a member of an
# enum class (``Tag.ID``) costs about 0.24 us in Python 3.11, ``.value`` 0.3
# more, and replies read them several times each.
_ID: Final = "ID"
_ER: Final = "ER"
_EM: Final = "EM"

# Best-effort recovery of the command and correlation id from bytes that do
# not form a valid frame, so the error reply can still be matched.
_RECOVER_COMMAND = re.compile(rb"AO([A-Z0-9]{4});")
_RECOVER_ID = re.compile(rb"(?:^|;)ID([A-Za-z0-9]{1,16});")
_INTERFRAME_WHITESPACE = b" \t\r\n"
_REDACTED_TAGS: Final = frozenset({"PT", "AD"})


class CodecError(ValueError):
    """A frame or field is unacceptable; ``code`` is the reply's ER value."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def valid_correlation_id(value: str) -> bool:
    """True if ``value`` may be used as an ``ID``: 1-16 letters or digits.

    For an ASCII string ``isalnum`` holds exactly for ``[A-Za-z0-9]+``.
    """
    return 0 < len(value) <= _MAX_CORRELATION_ID and value.isascii() and value.isalnum()


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``, as binary field values are carried."""
    # ``base64.b64encode`` is this call behind a layer of Python.
    return binascii.b2a_base64(data, newline=False).decode("ascii")


@dataclass(frozen=True, slots=True, repr=False)
class Frame:
    """One request or reply: a command and its fields in wire order.

    Construction validates the command name, each tag and each value, and
    rejects a repeated tag, so every Frame can be encoded as it stands.
    """

    command: str
    fields: tuple[tuple[str, str], ...] = ()
    # The fields by tag, for ``get``: a command reads about ten fields of its
    # request and reply, and the dict doubles as the duplicate-tag check.
    _index: dict[str, str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not _command_valid(self.command):
            raise CodecError(ErrorCode.MALFORMED_FRAME, "command must be 4 of A-Z 0-9")
        index = dict(self.fields)
        if not _fields_valid(self.fields, index):
            # Something is wrong: find the first problem, in wire order, to name it.
            seen: set[str] = set()
            for tag, value in self.fields:
                _check_field(tag, value, seen)
        object.__setattr__(self, "_index", index)

    @classmethod
    def _checked(
        cls, command: str, fields: tuple[tuple[str, str], ...], index: dict[str, str]
    ) -> Frame:
        """A Frame whose checks the caller has made: the decoder's fast path.

        ``__post_init__`` would check the values once more; for a decoded
        frame ``_decode_checked`` has shown them printable and free of ``;``
        ``[`` ``]``, and the command and tags valid.
        """
        frame = object.__new__(cls)
        object.__setattr__(frame, "command", command)
        object.__setattr__(frame, "fields", fields)
        object.__setattr__(frame, "_index", index)
        return frame

    def __repr__(self) -> str:
        # Frames carry plaintext and AAD; a repr that reaches a log must not.
        shown = ", ".join(
            f"{tag}={'<redacted>' if tag in _REDACTED_TAGS else value!r}"
            for tag, value in self.fields
        )
        return f"Frame({self.command}: {shown})"

    @classmethod
    def of(cls, command: str, **fields: str) -> Frame:
        """``Frame.of("ECHO", ID="7", DT="aGk=")``: keyword order is wire order."""
        return cls(command, tuple(fields.items()))

    @property
    def correlation_id(self) -> str | None:
        """The ``ID`` value if it is a valid correlation id, else None."""
        value = self._index.get(_ID)
        return value if value is not None and valid_correlation_id(value) else None

    def get(self, tag: str) -> str | None:
        """The value of ``tag``, or None when the frame has no such field."""
        return self._index.get(tag)

    def text(self, tag: str) -> str:
        """The value of a required field; MISSING_FIELD if absent."""
        value = self._index.get(tag)
        if value is None:
            raise CodecError(ErrorCode.MISSING_FIELD, f"missing field {tag}")
        return value

    def integer(self, tag: str) -> int:
        """A required unsigned decimal field; INVALID_FIELD if not one."""
        value = self.text(tag)
        if not _is_decimal(value):
            raise CodecError(
                ErrorCode.INVALID_FIELD, f"field {tag} must be a decimal number"
            )
        return int(value)

    def binary(self, tag: str) -> bytes:
        """A required base64 field, decoded; INVALID_FIELD if not base64."""
        # ``_decode_b64(tag, self.text(tag))`` inlined: two Python calls
        # less for the fields every GCEN and GCDE reads (not measured alone).
        value = self._index.get(tag)
        if value is None:
            raise CodecError(ErrorCode.MISSING_FIELD, f"missing field {tag}")
        try:
            return binascii.a2b_base64(value, strict_mode=True)
        except binascii.Error as exc:
            raise _not_base64(tag) from exc

    def optional_binary(self, tag: str) -> bytes | None:
        """An optional base64 field, decoded, or None when absent."""
        value = self._index.get(tag)
        return None if value is None else _decode_b64(tag, value)


def _command_valid(command: str) -> bool:
    """``_COMMAND``'s rule; the five known names by a set lookup."""
    return command in _KNOWN_COMMANDS or _COMMAND.fullmatch(command) is not None


def _is_decimal(value: str) -> bool:
    """``[0-9]{1,9}``: for an ASCII string ``isdigit`` holds exactly for 0-9."""
    return 0 < len(value) <= _MAX_DECIMAL_DIGITS and value.isascii() and value.isdigit()


def _fields_valid(fields: tuple[tuple[str, str], ...], index: dict[str, str]) -> bool:
    """The rules of ``_check_field`` for a whole frame at once.

    Every frame either end builds is checked, so this is on the hot path of
    both: one set lookup per tag, the index's size for duplicates, and one
    C-speed pass over all values together (a character class holds for a
    concatenation exactly when it holds for each part).
    """
    return (
        len(index) == len(fields)
        and _VALID_TAGS.issuperset(index)
        and _values_valid("".join(index.values()))
    )


def _values_valid(text: str) -> bool:
    """``_VALUE``'s rule: printable ASCII without ``;`` ``[`` ``]``."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return not data.translate(None, _VALUE_BYTES)


def _check_field(tag: str, value: str, seen: set[str]) -> None:
    if _TAG.fullmatch(tag) is None or tag == COMMAND_TAG:
        raise CodecError(ErrorCode.MALFORMED_FRAME, "tag must be 2 of A-Z 0-9")
    if tag in seen:
        raise CodecError(ErrorCode.MALFORMED_FRAME, f"duplicate tag {tag}")
    if _VALUE.fullmatch(value) is None:
        raise CodecError(
            ErrorCode.MALFORMED_FRAME,
            f"field {tag} holds a character that is not printable ASCII",
        )
    seen.add(tag)


def _decode_b64(tag: str, value: str) -> bytes:
    # ``base64.b64decode(value, validate=True)`` is exactly this call in
    # Python 3.11 (strict mode: only the alphabet, correct padding), less a
    # layer of Python; ``value`` is ASCII, as every Frame value is.
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        raise _not_base64(tag) from exc


def _not_base64(tag: str) -> CodecError:
    return CodecError(ErrorCode.INVALID_FIELD, f"field {tag} must be standard base64")


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``."""
    body = "".join([f"{tag}{value};" for tag, value in frame.fields])
    return f"[{COMMAND_TAG}{frame.command};{body}]".encode("ascii")


# --- replies -----------------------------------------------------------------


def reply_ok(request: Frame, **fields: str) -> Frame:
    """A success reply to ``request``: same command, its ID, ER 00, ``fields``."""
    head = _reply_head(request.correlation_id, ErrorCode.OK)
    return Frame(request.command, (*head, *fields.items()))


def _reply_ok_unchecked(request: Frame, *fields: tuple[str, str]) -> Frame:
    """``reply_ok`` for fields the caller vouches for: known distinct tags,
    values that are ``b64`` output or decimal digits (the simulator's GCEN,
    GCDE and ECHO replies).

    Checking them costs more than making them: joining and scanning every
    value (5.7 kB of base64 for a 4,300-byte payload) was about 7 % of the
    simulator's CPU under load (py-spy). The request's command and ID were
    checked when it was decoded.
    """
    all_fields = (*_reply_head(request.correlation_id, _OK), *fields)
    return Frame._checked(request.command, all_fields, dict(all_fields))


def reply_error(request: Frame | FrameError, code: ErrorCode, message: str) -> Frame:
    """An error reply to a request, or to bytes the decoder could not read.

    The message is cleaned of characters a value may not hold and shortened,
    so any text (an exception's, say) can be passed in safely.
    """
    if isinstance(request, Frame):
        command, correlation_id = request.command, request.correlation_id
    else:
        command = request.command or UNREADABLE_COMMAND
        correlation_id = request.correlation_id
    head = _reply_head(correlation_id, code)
    return Frame(command, (*head, (_EM, _clean_message(message))))


def reply_to_frame_error(event: FrameError) -> Frame:
    """The error reply a server sends for a decoder's FrameError event."""
    return reply_error(event, event.code, event.message)


def _reply_head(
    correlation_id: str | None, code: ErrorCode
) -> tuple[tuple[str, str], ...]:
    result = ((_ER, _CODE_TEXT[code]),)
    if correlation_id is None:
        return result
    return ((_ID, correlation_id), *result)


# ``ErrorCode(text)`` goes through the enum machinery (about 1 us in Python
# 3.11) and ``code.value`` through a descriptor; every reply needs both.
_CODE_TEXT: Final = {code: code.value for code in ErrorCode}
_OK: Final = ErrorCode.OK
_CODE_OF_TEXT: Final = {code.value: code for code in ErrorCode}


_MAX_MESSAGE = 160  # short enough for one log line; chosen, not measured
_MESSAGE_UNSAFE = re.compile(r"[^\x20-\x3a\x3c-\x5a\x5c\x5e-\x7e]")


_MESSAGE_SWAPS = str.maketrans({";": ",", "[": "(", "]": ")"})


def _clean_message(message: str) -> str:
    swapped = message.translate(_MESSAGE_SWAPS)
    return _MESSAGE_UNSAFE.sub("?", swapped)[:_MAX_MESSAGE]


def result_code(reply: Frame) -> ErrorCode:
    """The reply's ``ER`` code; MALFORMED_FRAME if it carries no valid one."""
    value = reply.get(_ER)
    code = None if value is None else _CODE_OF_TEXT.get(value)
    if code is None:
        raise CodecError(ErrorCode.MALFORMED_FRAME, "reply has no valid ER")
    return code


# --- decoding ----------------------------------------------------------------


class NeedData(enum.Enum):
    """The decoder's "give me more bytes" event (compare with ``is``)."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that did not form an acceptable frame.

    ``command`` and ``correlation_id`` are filled in when they could be read
    from the offending bytes, so the error reply can be matched by the client.
    """

    code: ErrorCode
    message: str
    correlation_id: str | None = None
    command: str | None = None


Event = Frame | FrameError | Literal[NeedData.NEED_DATA]


class FrameDecoder:
    """Incremental decoder: ``receive_data`` bytes, then ``next_event`` until
    it returns NEED_DATA.

    After garbage or a malformed frame it reports one FrameError and resumes at
    the next ``[``. A frame longer than ``max_frame_bytes`` (brackets included)
    is reported as FRAME_TOO_LARGE once its first ``max_frame_bytes`` have been
    seen, and the rest is discarded as it arrives, through the closing ``]``,
    without being buffered. ``[`` cannot occur inside a frame, so an opening
    bracket also ends a discard: the oversized frame was simply unterminated.

    Memory: once ``next_event`` has returned NEED_DATA, at most
    ``max_frame_bytes`` stay buffered, however hostile the input.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < len(b"[AOECHO;]"):
            raise ValueError("max_frame_bytes is too small to hold any frame")
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._scanned = 1  # bytes after the opening "[" known to hold no [ or ]
        self._discarding = False  # inside an oversized frame
        self._in_garbage = False  # a garbage run already reported

    @property
    def buffered_bytes(self) -> int:
        """How many received bytes are held, waiting to complete a frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes read from the connection."""
        self._buffer += data

    def next_event(self) -> Event:
        """The next Frame or FrameError, or NEED_DATA when more bytes are needed."""
        while True:
            if self._discarding:
                if not self._discard():
                    return NEED_DATA
                continue
            if not self._buffer:
                return NEED_DATA
            if self._buffer[0] != ord("["):
                garbage = self._skip_garbage()
                if garbage is not None:
                    return garbage
                continue
            return self._frame_event()

    def _discard(self) -> bool:
        """Drop oversized-frame bytes; True once its end has been found."""
        end = _find_bracket(self._buffer, 0, len(self._buffer))
        if end < 0:
            self._buffer.clear()
            return False
        closing = self._buffer[end] == ord("]")
        del self._buffer[: end + 1 if closing else end]
        self._discarding = False
        return True

    def _skip_garbage(self) -> FrameError | None:
        """Drop bytes up to the next ``[``; report a non-blank run once."""
        start = self._buffer.find(b"[")
        stop = len(self._buffer) if start < 0 else start
        junk = bytes(self._buffer[:stop]).strip(_INTERFRAME_WHITESPACE)
        del self._buffer[:stop]

        report = bool(junk) and not self._in_garbage
        self._in_garbage = start < 0 and (self._in_garbage or bool(junk))
        if not report:
            return None
        return FrameError(ErrorCode.MALFORMED_FRAME, "bytes outside a frame")

    def _frame_event(self) -> Frame | FrameError | Literal[NeedData.NEED_DATA]:
        # The buffer starts with "[": find the first "[" or "]" after it within
        # the size limit, scanning only bytes not already scanned.
        self._in_garbage = False
        limit = min(len(self._buffer), self._max)
        end = _find_bracket(self._buffer, self._scanned, limit)
        if end < 0:
            if len(self._buffer) >= self._max:
                return self._oversized()
            self._scanned = max(limit, 1)
            return NEED_DATA

        body = self._buffer[1:end]
        self._scanned = 1
        if self._buffer[end] == ord("["):
            del self._buffer[:end]
            return _error_from(
                bytes(body),
                ErrorCode.MALFORMED_FRAME,
                "frame not closed before the next one opened",
            )
        del self._buffer[: end + 1]
        return _decode_checked(body) or _parse_body(bytes(body))

    def _oversized(self) -> FrameError:
        head = bytes(self._buffer[1 : self._max])
        del self._buffer[: self._max]
        self._scanned = 1
        self._discarding = True
        return _error_from(
            head,
            ErrorCode.FRAME_TOO_LARGE,
            f"frame longer than {self._max} bytes",
        )


def _find_bracket(buffer: bytearray, start: int, stop: int) -> int:
    """Index of the first ``[`` or ``]`` in ``buffer[start:stop]``, or -1."""
    opening = buffer.find(b"[", start, stop)
    closing = buffer.find(b"]", start, stop)
    if opening < 0:
        return closing
    if closing < 0:
        return opening
    return min(opening, closing)


def _decode_checked(body: bytearray) -> Frame | None:
    """The Frame in ``body`` when it is valid, checked at C speed; else None,
    for ``_parse_body`` to find and name what is wrong.

    Accepts only what ``_parse_body`` accepts, and gives the same Frame. The
    decoder cut ``body`` at the first ``[`` or ``]`` and splits it on ``;``,
    so of a value's rule only "printable ASCII" is left, and one ``translate``
    checks it for the whole body (command and tags included, which their own
    checks then narrow). A field shorter than its tag leaves a tag not in
    ``_VALID_TAGS``; a repeated tag makes the index shorter than the parts.
    Skipping ``Frame.__post_init__`` saves checking every value a second time.
    """
    if body.translate(None, _PRINTABLE_BYTES) or not body.startswith(b"AO"):
        return None
    parts = body.decode("ascii").split(";")
    if parts.pop() or not _command_valid(command := parts[0][2:]):
        return None  # the last field was not terminated, or a bad command
    index = {part[:2]: part[2:] for part in parts[1:]}
    if len(index) != len(parts) - 1 or not _VALID_TAGS.issuperset(index):
        return None
    return Frame._checked(command, tuple(index.items()), index)


def _parse_body(body: bytes) -> Frame | FrameError:
    """A Frame from the bytes between ``[`` and ``]``, or the reason it is not."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return _malformed(body, "frame is not ASCII")

    parts = text.split(";")
    if parts[-1] != "":
        return _malformed(body, "last field not terminated")
    head = parts[0]
    if not head.startswith(COMMAND_TAG):
        return _error_from(
            body, ErrorCode.MALFORMED_FRAME, "frame must start with AO and the command"
        )
    try:
        return Frame(head[2:], _split_fields(parts[1:-1]))
    except CodecError as exc:
        return _error_from(body, exc.code, exc.message)


def _split_fields(parts: list[str]) -> tuple[tuple[str, str], ...]:
    if parts and min(map(len, parts)) < 2:
        raise CodecError(ErrorCode.MALFORMED_FRAME, "field shorter than its tag")
    return tuple([(part[:2], part[2:]) for part in parts])


def _malformed(raw: bytes, message: str) -> FrameError:
    return _error_from(raw, ErrorCode.MALFORMED_FRAME, message)


def _error_from(raw: bytes, code: ErrorCode, message: str) -> FrameError:
    command = _RECOVER_COMMAND.match(raw)
    correlation = _RECOVER_ID.search(raw)
    return FrameError(
        code,
        message,
        correlation_id=correlation.group(1).decode("ascii") if correlation else None,
        command=command.group(1).decode("ascii") if command else None,
    )
