"""Measure the host-protocol codec: CPU time per frame built, encoded, decoded.

    .venv/bin/python -m tests.bench.codec_bench [--seconds S] [--repeat N]
    .venv/bin/python -m tests.bench.codec_bench --root /tmp/sim_orig

Both ends of the HSM link run this code for every frame: the sidecar's
CryptoHub backend builds and encodes each request and decodes each reply,
the simulator the other way round. The frames are the ones the XKS load
makes: GCEN and GCDE requests and replies with a 32-byte plaintext and a
110-byte AAD, and the 4,300-byte variants (the XKS plaintext maximum).

Each case runs for ``--seconds`` of CPU time (``time.process_time``), ``--repeat``
times; printed are the minimum and the spread (max - min) in microseconds per
operation. ``--root DIR`` imports ``simulator`` from DIR instead, to compare
against a copy of the original code; alternate the two runs on a shared
machine. Not a pytest test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

_AAD = os.urandom(110)
_SMALL, _LARGE = 32, 4300


def _frames(codec: ModuleType, size: int) -> dict[str, Any]:
    """The requests and replies of one GCEN and one GCDE of ``size`` bytes."""
    b64 = codec.b64
    key = "foo"
    fields = {
        "gcen_request": (
            "GCEN",
            (
                ("ID", "1a2b"),
                ("KL", key),
                ("PT", b64(os.urandom(size))),
                ("AD", b64(_AAD)),
            ),
        ),
        "gcen_reply": (
            "GCEN",
            (
                ("ID", "1a2b"),
                ("ER", "00"),
                ("KV", "1"),
                ("IV", b64(os.urandom(12))),
                ("CT", b64(os.urandom(size))),
                ("TG", b64(os.urandom(16))),
            ),
        ),
        "gcde_request": (
            "GCDE",
            (
                ("ID", "1a2c"),
                ("KL", key),
                ("KV", "1"),
                ("IV", b64(os.urandom(12))),
                ("CT", b64(os.urandom(size))),
                ("TG", b64(os.urandom(16))),
                ("AD", b64(_AAD)),
            ),
        ),
        "gcde_reply": (
            "GCDE",
            (("ID", "1a2c"), ("ER", "00"), ("PT", b64(os.urandom(size)))),
        ),
    }
    return fields


def _cases(codec: ModuleType) -> dict[str, Callable[[], object]]:
    frame_cls, encode, decoder_cls = codec.Frame, codec.encode_frame, codec.FrameDecoder
    need_data = codec.NEED_DATA
    cases: dict[str, Callable[[], object]] = {}
    for size, suffix in ((_SMALL, ""), (_LARGE, "_4300")):
        for name, (command, fields) in _frames(codec, size).items():
            wire = encode(frame_cls(command, fields))

            def build(command: str = command, fields: Any = fields) -> object:
                return encode(frame_cls(command, fields))

            decoder = decoder_cls()

            def decode(wire: bytes = wire, decoder: Any = decoder) -> object:
                decoder.receive_data(wire)
                event = decoder.next_event()
                assert isinstance(event, frame_cls), event
                assert decoder.next_event() is need_data
                return event

            cases[f"build+encode {name}{suffix}"] = build
            cases[f"decode {name}{suffix}"] = decode
    cases.update(_simulator_side(codec))
    return cases


def _simulator_side(codec: ModuleType) -> dict[str, Callable[[], object]]:
    """What the simulator does per GCEN with the codec, but for the crypto:
    decode the request, read its fields, build and encode the reply."""
    frame_cls, encode = codec.Frame, codec.encode_frame
    request = encode(frame_cls(*_frames(codec, _SMALL)["gcen_request"]))
    iv, ct, tg = os.urandom(12), os.urandom(_SMALL), os.urandom(16)

    decoder = codec.FrameDecoder()

    def gcen_round() -> object:
        decoder.receive_data(request)
        frame = decoder.next_event()
        frame.correlation_id  # noqa: B018 - the handler reads it
        frame.get("KL"), frame.get("KU")
        frame.binary("PT"), frame.optional_binary("AD")
        reply = codec.reply_ok(
            frame, KV="1", IV=codec.b64(iv), CT=codec.b64(ct), TG=codec.b64(tg)
        )
        codec.result_code(reply)
        return encode(reply)

    return {"simulator GCEN round (codec only)": gcen_round}


def _measure(operation: Callable[[], object], seconds: float) -> float:
    """CPU microseconds per call, over at least ``seconds`` of CPU time."""
    batch = 200
    calls = 0
    start = time.process_time()
    while (spent := time.process_time() - start) < seconds:
        for _ in range(batch):
            operation()
        calls += batch
    return spent / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="run the cases containing this")
    parser.add_argument("--root", help="import simulator from this folder")
    args = parser.parse_args(argv)
    if args.root:
        sys.path.insert(0, args.root)
    codec = importlib.import_module("simulator.hostproto.codec")
    print(f"codec: {codec.__file__}")
    for name, operation in _cases(codec).items():
        if args.only not in name:
            continue
        runs = [_measure(operation, args.seconds) for _ in range(args.repeat)]
        print(
            f"{name:42s} min {min(runs):7.2f} us  spread {max(runs) - min(runs):5.2f}"
        )


if __name__ == "__main__":
    main()
