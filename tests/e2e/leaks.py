"""The session-end check that no secret reached a log.

It looks for the SigV4 secret keys, the simulator's master key, the token's
PINs and anything a test registered with ``Stack.remember_secret``, in the
sidecar's log and the HSM side's; and, in the sidecar's log, for the shapes
that only a leak produces there (a SigV4 signature, a plaintext or AAD
field).
"""

from __future__ import annotations

from tests.e2e.stack import Stack

# Only a leak puts these into the sidecar's log: parts of a SigV4
# Authorization header, and a request body's secret fields.
LEAK_MARKERS = (
    b"Signature=",
    b"Credential=",
    b'"plaintext":',
    b'"additionalAuthenticatedData":',
)


def find_leaks(stack: Stack) -> list[str]:
    """Which secrets (by label, never by value) appear in which log."""
    leaks = []
    logs = {
        path: path.read_bytes() for path in (stack.sidecar_log, stack.simulator_log)
    }
    for label, value in stack.secrets:
        for path, content in logs.items():
            if value in content:
                leaks.append(f"{label} in {path.name}")
    sidecar_log = logs[stack.sidecar_log]
    for marker in LEAK_MARKERS:
        if marker in sidecar_log:
            leaks.append(f"{marker.decode()!r} in {stack.sidecar_log.name}")
    return leaks
