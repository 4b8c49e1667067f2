"""The interface every key manager backend implements (CryptoHub, PKCS#11).

The XKS service (``sidecar.xks.service``) talks to the HSM only through
``KeyManager``. Backends translate their own failures into XKS errors at
their boundary (``raise ... from exc``), so the service never sees a socket
or PKCS#11 exception:

    key unknown                 KeyNotFoundException
    key disabled                InvalidStateException
    usage not permitted         InvalidKeyUsageException
    tag mismatch, unknown key
    version, bad IV length      InvalidCiphertextException
    HSM busy                    ThrottlingException
    deadline passed             DependencyTimeoutException
    anything else               InternalException

The service calls ``describe_key`` before every Encrypt and Decrypt (the key's
state and usage are checked before any cryptography), so at 1,800 requests a
second a backend should answer it from a short-lived cache rather than ask the
HSM each time; the HSM still enforces state and usage on the operation itself.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

AES_256 = "AES_256"
ENCRYPT = "ENCRYPT"
DECRYPT = "DECRYPT"


class BackendStartupError(Exception):
    """A backend cannot start as configured (unusable settings, a module that
    will not load, a PIN the token refuses).

    The sidecar reports these in one line and exits, instead of a traceback:
    they are the operator's to fix, not bugs.
    """


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """What GetKeyMetadata reports, plus the version new encryptions use."""

    key_spec: str  # "AES_256" for every key XKS v1 can use
    usages: frozenset[str]  # spec spelling: ENCRYPT, DECRYPT, WRAP, ...
    enabled: bool
    current_version: int


class GcmResult(NamedTuple):
    """An AES-GCM encryption: the key version the HSM used, IV, output, tag."""

    key_version: int
    iv: bytes
    ciphertext: bytes
    tag: bytes


class KeyManager(Protocol):
    """An external key manager reached by external key id (the HSM label).

    Encrypt and decrypt return an awaitable rather than being declared
    ``async``: a driver may hand back the coroutine of a call it delegates
    to, sparing a coroutine frame per call (the CryptoHub driver does); an
    ``async def`` satisfies the declaration as well. Argument errors may be
    raised at the call or when awaited.
    """

    async def describe_key(self, key_id: str) -> KeyDescription:
        """The key's spec, usages, state and current version."""
        ...

    def encrypt(
        self, key_id: str, plaintext: bytes, hsm_aad: bytes
    ) -> Awaitable[GcmResult]:
        """AES-256-GCM under the key's current version; the HSM draws the IV."""
        ...

    def decrypt(
        self,
        key_id: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        hsm_aad: bytes,
    ) -> Awaitable[bytes]:
        """AES-256-GCM decryption under ``key_version``; opaque on failure."""
        ...


class NodeState(enum.StrEnum):
    """The spec's ekmFleetDetails.healthStatus values."""

    ACTIVE = "ACTIVE"
    DEGRADED = "DEGRADED"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node's probe result."""

    name: str  # the configured node name
    state: NodeState
    node_id: str | None  # NODE's NI; None when NODE was not answered
    model: str | None  # NODE's MD
    version: str | None  # NODE's VR
    latency_s: float  # the whole probe, or until it failed or timed out
    detail: str  # why the node is not ACTIVE; "" when it is
