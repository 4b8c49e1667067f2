"""One function per XKS API: typed request + policy + backend → response.

The data plane has already routed, authenticated and parsed the request; this
module applies the spec's rules for each operation and calls the key manager.
It does no I/O of its own beyond awaiting the backend, and imports no event
loop.

Order of checks, per API: secondary authorization (never for health), then
the key's state and usage as the backend describes them, then cryptography.
Usage is checked before any cryptography so a key that may not do the job
costs no HSM operation and the caller gets the spec's error for it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from sidecar.backends.base import (
    AES_256,
    DECRYPT,
    ENCRYPT,
    GcmResult,
    KeyDescription,
    KeyManager,
)
from sidecar.xks.envelope import cdiv, encode_metadata, hsm_aad, metadata_key_version
from sidecar.xks.errors import (
    InternalException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    InvalidStateException,
)
from sidecar.xks.messages import (
    DecryptRequest,
    EncryptRequest,
    GetHealthStatusRequest,
    GetKeyMetadataRequest,
)
from sidecar.xks.policy import Policy
from sidecar.xks.responses import (
    MAX_KEY_USAGES,
    DecryptResponse,
    EncryptResponse,
    HealthStatusResponse,
    KeyMetadataResponse,
)
from sidecar.xks.routes import Operation

# How often Encrypt re-runs when the key's current version moved between our
# describe_key and the HSM's encryption (a rotation racing the request). One
# retry covers a single rotation; two in a few milliseconds is an anomaly.
_ENCRYPT_ATTEMPTS = 2
_GCM_IV_LENGTHS = frozenset({12, 16})
_GCM_TAG_LENGTH = 16

HealthReporter = Callable[[], Awaitable[HealthStatusResponse]]


async def get_health_status(
    request: GetHealthStatusRequest, report: HealthReporter
) -> HealthStatusResponse:
    """GetHealthStatus: the (possibly cached) deep health report.

    Excluded from secondary authorization by the spec. The report comes from
    the health checker, which may answer from a result up to a minute old
    (spec, GetHealthStatus, KMS Considerations).
    """
    del request  # the data plane logs its metadata; nothing here depends on it
    return await report()


async def get_key_metadata(
    key_id: str, request: GetKeyMetadataRequest, policy: Policy, backend: KeyManager
) -> KeyMetadataResponse:
    """GetKeyMetadata: spec, usages and status, even for a disabled key."""
    policy.authorize(Operation.GET_KEY_METADATA, key_id, request.metadata)
    description = await backend.describe_key(key_id)
    return KeyMetadataResponse(
        key_spec=description.key_spec,
        key_usage=_reported_usages(description.usages),
        key_status="ENABLED" if description.enabled else "DISABLED",
    )


def _reported_usages(usages: frozenset[str]) -> tuple[str, ...]:
    # At most ten values (spec); ENCRYPT and DECRYPT first, since KMS's
    # CreateKey looks for them and they must survive the cut.
    first = [u for u in (ENCRYPT, DECRYPT) if u in usages]
    rest = sorted(usages - {ENCRYPT, DECRYPT})
    return tuple(first + rest)[:MAX_KEY_USAGES]


async def encrypt(
    key_id: str, request: EncryptRequest, policy: Policy, backend: KeyManager
) -> EncryptResponse:
    """Encrypt, with the CDIV and its verifying decrypt when asked (Appendix C)."""
    policy.authorize(Operation.ENCRYPT, key_id, request.metadata)
    wants_cdiv = request.cdiv_algorithm is not None
    description = await backend.describe_key(key_id)
    # A CDIV promises that decrypt will succeed, and we prove it by decrypting:
    # a key that may not decrypt cannot give that promise.
    _require_usable(description, (ENCRYPT, DECRYPT) if wants_cdiv else (ENCRYPT,))

    aad = request.additional_authenticated_data
    result, metadata, sealed_aad = await _encrypt_at_current_version(
        backend, key_id, request.plaintext, aad, description.current_version
    )
    _check_gcm_output(result, len(request.plaintext))
    integrity_value = None
    if wants_cdiv:
        # Appendix C: compute the CDIV *before* the verifying decrypt, so a
        # corruption after this point fails the decrypt instead of being
        # sealed into a matching CDIV.
        integrity_value = cdiv(aad, metadata, result.iv, result.ciphertext, result.tag)
        await _verify_decryptable(
            backend, key_id, request.plaintext, result, sealed_aad
        )
    return EncryptResponse(
        ciphertext=result.ciphertext,
        initialization_vector=result.iv,
        authentication_tag=result.tag,
        ciphertext_metadata=metadata,
        ciphertext_data_integrity_value=integrity_value,
    )


async def decrypt(
    key_id: str, request: DecryptRequest, policy: Policy, backend: KeyManager
) -> DecryptResponse:
    """Decrypt a ciphertext this proxy produced."""
    policy.authorize(Operation.DECRYPT, key_id, request.metadata)
    description = await backend.describe_key(key_id)
    _require_usable(description, (DECRYPT,))

    plaintext = await _decrypt(
        backend,
        key_id,
        request.ciphertext_metadata,
        request.additional_authenticated_data,
        request.initialization_vector,
        request.ciphertext,
        request.authentication_tag,
    )
    if len(plaintext) != len(request.ciphertext):
        # GCM is a stream cipher (spec, Decrypt); anything else is a backend bug.
        raise InternalException(reason="backend plaintext length != ciphertext")
    return DecryptResponse(plaintext)


def _require_usable(description: KeyDescription, usages: tuple[str, ...]) -> None:
    if not description.enabled:
        raise InvalidStateException("The external key is disabled.")
    if description.key_spec != AES_256:
        # XKS v1 supports 256-bit AES keys only ("API operations").
        raise InvalidKeyUsageException("The external key is not an AES_256 key.")
    for usage in usages:
        if usage not in description.usages:
            raise InvalidKeyUsageException(f"The external key does not permit {usage}.")


async def _encrypt_at_current_version(
    backend: KeyManager,
    key_id: str,
    plaintext: bytes,
    aad: bytes,
    predicted_version: int,
) -> tuple[GcmResult, bytes, bytes]:
    """Encrypt with the key version recorded in the ciphertextMetadata.

    The metadata (which names the key version) is part of the HSM AAD, but
    the HSM picks the version only when it encrypts. We build the metadata
    for the version describe_key reported and check the HSM used that one;
    if a rotation slipped in between, we encrypt again for the new version.
    Returns the result, its ciphertextMetadata and the HSM AAD used.
    """
    for _ in range(_ENCRYPT_ATTEMPTS):
        metadata = encode_metadata(predicted_version)
        sealed_aad = hsm_aad(aad, metadata)
        result = await backend.encrypt(key_id, plaintext, sealed_aad)
        if result.key_version == predicted_version:
            return result, metadata, sealed_aad
        predicted_version = result.key_version
    raise InternalException(reason="key version kept changing during encrypt")


def _check_gcm_output(result: GcmResult, plaintext_length: int) -> None:
    # The spec's response rules (Encrypt): IV 12 or 16 bytes, tag 16 bytes,
    # ciphertext as long as the plaintext. A backend breaking them is a bug.
    if (
        len(result.iv) not in _GCM_IV_LENGTHS
        or len(result.tag) != _GCM_TAG_LENGTH
        or len(result.ciphertext) != plaintext_length
    ):
        raise InternalException(reason="backend returned malformed GCM output")


async def _verify_decryptable(
    backend: KeyManager,
    key_id: str,
    expected: bytes,
    result: GcmResult,
    sealed_aad: bytes,
) -> None:
    """Appendix C step 3: decrypt the output as a Decrypt request would.

    A Decrypt of this output would read the key version back from the
    metadata we just encoded (``result.key_version``, checked equal) and
    rebuild the very HSM AAD the encryption used, so both are reused as
    they are rather than decoded and built again.
    """
    try:
        plaintext = await backend.decrypt(
            key_id,
            result.key_version,
            result.iv,
            result.ciphertext,
            result.tag,
            sealed_aad,
        )
    except InvalidCiphertextException as exc:
        # Our own fresh ciphertext does not decrypt: the caller's input was
        # fine, so this is ours to own (Appendix C step 4: return an error).
        raise InternalException(
            reason="CDIV check: ciphertext not decryptable"
        ) from exc
    if not hmac.compare_digest(plaintext, expected):
        raise InternalException(reason="CDIV check: decrypt gave other plaintext")


def _decrypt(
    backend: KeyManager,
    key_id: str,
    metadata: bytes | None,
    aad: bytes,
    iv: bytes,
    ciphertext: bytes,
    tag: bytes,
) -> Awaitable[bytes]:
    """The backend's decrypt of a Decrypt request's fields.

    A plain function handing back the backend's coroutine (one coroutine
    less per Decrypt); bad metadata still raises in the awaiting statement.
    """
    key_version = metadata_key_version(metadata)
    return backend.decrypt(
        key_id, key_version, iv, ciphertext, tag, hsm_aad(aad, metadata or b"")
    )
