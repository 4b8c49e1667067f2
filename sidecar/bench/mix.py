"""The request mix: which operations, in what proportion, in what order.

A mix is written ``encrypt=60,decrypt=35,encrypt_large=5`` (weights, not
necessarily summing to 100). The default models KMS traffic dominated by
GenerateDataKey: 60 % Encrypts of 32-byte data keys with ~100 bytes of AAD,
35 % Decrypts of ciphertexts made earlier in the run, 5 % Encrypts of
4300-byte payloads (the spec's maximum plaintext a proxy must take).

The order is smooth weighted round-robin, not random: every window of the
cycle holds the operations in proportion, so even a two-second run sends
the mix it claims, and two runs send the same sequence.
"""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.bench.payloads import Operation

DEFAULT_MIX = "encrypt=60,decrypt=35,encrypt_large=5"


def parse_mix(text: str) -> dict[Operation, int]:
    """``name=weight`` pairs, comma-separated, into weights by operation."""
    weights: dict[Operation, int] = {}
    for item in text.split(","):
        name, eq, weight = item.strip().partition("=")
        try:
            operation = Operation(name.strip())
        except ValueError:
            known = ", ".join(op.value for op in Operation)
            raise ValueError(
                f"unknown operation {name!r} in mix (known: {known})"
            ) from None
        if not eq or not weight.strip().isdigit():
            raise ValueError(f"mix item {item.strip()!r} needs a whole weight: name=N")
        if operation in weights:
            raise ValueError(f"operation {name!r} appears twice in the mix")
        weights[operation] = int(weight)
    if not any(weights.values()):
        raise ValueError("the mix needs at least one operation with weight > 0")
    return {op: w for op, w in weights.items() if w > 0}


def format_mix(weights: Mapping[Operation, int]) -> str:
    return ",".join(f"{op.value}={weight}" for op, weight in weights.items())


def mix_cycle(weights: Mapping[Operation, int]) -> list[Operation]:
    """One cycle (as long as the weights' sum) in smooth round-robin order.

    Each step every operation gains its weight; the one with most credit is
    sent and pays the total. This spreads each operation evenly over the
    cycle instead of sending them in blocks.
    """
    total = sum(weights.values())
    credit = dict.fromkeys(weights, 0)
    cycle: list[Operation] = []
    for _ in range(total):
        for op, weight in weights.items():
            credit[op] += weight
        chosen = max(credit, key=credit.__getitem__)
        credit[chosen] -= total
        cycle.append(chosen)
    return cycle
