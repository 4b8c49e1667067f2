"""The KeyManager over a PKCS#11 token, with calls in worker threads.

Every PKCS#11 call blocks, so each backend call runs in a worker thread
(``trio.to_thread.run_sync``) behind a CapacityLimiter of ``pool_size``: a
slow HSM occupies threads and sessions, never the event loop, and other
requests keep being served up to that many at once.

Deadlines. A call is bounded by ``call_timeout_s`` (150 ms by default: KMS
gives the whole request 250 ms), waiting for a free session included; past
it the caller gets DependencyTimeoutException. A thread cannot be
cancelled, so the caller returns at the deadline while the thread finishes
its PKCS#11 call, hands its session back to the pool and gives up its
limiter slot; its result is discarded. A hung HSM therefore fills the pool
with threads that are still waiting, and new calls time out waiting for a
slot until the HSM answers. The thread skips its retry once the deadline
has passed.

describe_key answers from the CryptoHub backend's short-lived single-flight
cache (``describe_cache.py`` says why); Encrypt uses the current version
found there, so a rotation reaches new encryptions within the cache's TTL,
while a disabled key is refused at once (``operations.py`` checks the
version's dates on every operation).

PKCS#11 failures become XKS errors here, at the boundary (``errors.py``),
with ``raise ... from``; no reason carries key material, plaintext or AAD.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final, TypeVar

import trio

from sidecar.audit import note_hsm_node
from sidecar.backends.base import GcmResult, KeyDescription, NodeStatus
from sidecar.backends.describe_cache import DescribeCache
from sidecar.backends.pkcs11 import operations
from sidecar.backends.pkcs11.attributes import attribute_mapper
from sidecar.backends.pkcs11.errors import Pkcs11Failure, xks_error
from sidecar.backends.pkcs11.gcm import IV_BYTES, TAG_BYTES
from sidecar.backends.pkcs11.health import ProbeRecord, run_probe
from sidecar.backends.pkcs11.labels import FIRST_VERSION, check_external_key_id
from sidecar.backends.pkcs11.module import (
    LoadedModule,
    Pkcs11ModuleError,
    acquire_module,
    release_module,
)
from sidecar.backends.pkcs11.operations import KeyLookup
from sidecar.backends.pkcs11.pool import (
    Lease,
    LoginRefused,
    PoolUnavailable,
    SessionPool,
    TokenSelector,
)
from sidecar.backends.pkcs11.settings import Pkcs11Settings
from sidecar.xks.errors import (
    DependencyTimeoutException,
    InternalException,
    InvalidCiphertextException,
    KeyNotFoundException,
    XksError,
)

T = TypeVar("T")
logger = logging.getLogger("sidecar.backends.pkcs11")

# Past this many keys, the remembered current versions are forgotten, so
# key ids asked for once cannot grow memory without bound. Chosen, not measured.
_MAX_VERSION_HINTS: Final = 4096


class Pkcs11Backend:
    """A ``KeyManager`` over one PKCS#11 token; see the module docstring."""

    def __init__(self, settings: Pkcs11Settings, module: LoadedModule) -> None:
        self._settings = settings
        self._lookup = KeyLookup(settings.key_id_attribute)
        selector = TokenSelector(settings.token_label, settings.token_serial)
        self.pool = SessionPool(module, selector, settings.user_pin, attribute_mapper())
        self._limiter = trio.CapacityLimiter(settings.pool_size)
        self._descriptions = DescribeCache(settings.describe_cache_ttl_s)
        self._version_hints: dict[str, int] = {}
        self._closed = False

    async def describe_key(self, key_id: str) -> KeyDescription:
        _check_key_id(key_id)
        self._require_open()  # a cached answer is no answer from a closed backend
        return await self._descriptions.get(key_id, self._describe_uncached)

    async def _describe_uncached(self, key_id: str) -> KeyDescription:
        hint = self._version_hints.get(key_id, FIRST_VERSION)

        def work(lease: Lease) -> KeyDescription:
            return operations.describe(lease, self._lookup, key_id, hint)

        description = await self._call("describe_key", work)
        if len(self._version_hints) > _MAX_VERSION_HINTS:
            self._version_hints.clear()
        self._version_hints[key_id] = description.current_version
        return description

    async def encrypt(self, key_id: str, plaintext: bytes, hsm_aad: bytes) -> GcmResult:
        version = (await self.describe_key(key_id)).current_version
        source = self._settings.iv_source

        def work(lease: Lease) -> GcmResult:
            return operations.encrypt(
                lease, self._lookup, key_id, version, plaintext, hsm_aad, source
            )

        return await self._call("encrypt", work)

    async def decrypt(
        self,
        key_id: str,
        key_version: int,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
        hsm_aad: bytes,
    ) -> bytes:
        _check_key_id(key_id)
        # XKS allows 16-byte IVs and any version number in a Decrypt request;
        # we only ever made 12-byte IVs and versions from 1, so anything else
        # cannot be ours (sidecar/backends/base.py's table).
        if len(iv) != IV_BYTES or len(tag) != TAG_BYTES or key_version < FIRST_VERSION:
            raise InvalidCiphertextException(reason="IV, tag or key version invalid")
        sealed = (iv, ciphertext, tag)

        def work(lease: Lease) -> bytes:
            return operations.decrypt(
                lease, self._lookup, key_id, key_version, sealed, hsm_aad
            )

        return await self._call("decrypt", work)

    async def probe(self, health_key_id: str) -> list[NodeStatus]:
        """Deep-check the token with the health key (see ``health.py``)."""
        record = ProbeRecord()
        source = self._settings.iv_source

        def work(lease: Lease) -> None:
            run_probe(lease, self._lookup, health_key_id, source, record)

        started = trio.current_time()
        try:
            await self._call("health probe", work, self._settings.health_timeout_s)
        except XksError as exc:
            record.problem = exc.reason or exc.message
        latency = trio.current_time() - started
        name, slow = self._settings.token_name, self._settings.health_slow_s
        return [record.status(name, latency, slow)]

    async def check_start(self) -> None:
        """Open a session and find the health key, to report problems early.

        A PIN the token refuses stops the start (Pkcs11ModuleError): nothing
        will work until it is fixed. Anything else is logged, and the proxy
        starts anyway, reporting the token UNAVAILABLE until it answers.
        """
        key_id = self._settings.health_key_id

        def work(lease: Lease) -> KeyDescription:
            return operations.describe(lease, self._lookup, key_id, FIRST_VERSION)

        try:
            await self._call("start-up check", work, self._settings.health_timeout_s)
        except XksError as exc:
            if isinstance(exc.__cause__, LoginRefused):
                raise Pkcs11ModuleError(str(exc.__cause__)) from exc
            logger.warning("PKCS#11 token not ready at start: %s", exc.reason)

    async def aclose(self) -> None:
        """Wait for worker threads, close the sessions, finalise the module.

        If threads are still inside the module after ``close_timeout_s``, the
        module is left initialised: finalising it under a running call could
        crash the process.
        """
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            if not await self._drain():
                logger.warning("PKCS#11 calls still running at close; module left open")
                return
            await trio.to_thread.run_sync(self.pool.close)
            await trio.to_thread.run_sync(release_module, self.pool.module)

    async def _drain(self) -> bool:
        """Take every limiter slot: True once no worker thread is running."""
        with trio.move_on_after(self._settings.close_timeout_s):
            for _ in range(self._settings.pool_size):
                await self._limiter.acquire_on_behalf_of(object())
            return True
        return False

    def _require_open(self) -> None:
        if self._closed:
            raise InternalException(reason="the PKCS#11 backend is closed")

    async def _call(
        self, operation: str, work: Callable[[Lease], T], timeout_s: float | None = None
    ) -> T:
        self._require_open()
        note_hsm_node(self._settings.token_name)
        timeout = self._settings.call_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        with trio.move_on_after(timeout):
            try:
                return await trio.to_thread.run_sync(
                    self.pool.run,
                    work,
                    deadline,
                    limiter=self._limiter,
                    abandon_on_cancel=True,
                )
            except Pkcs11Failure as exc:
                raise xks_error(exc, operation) from exc
            except PoolUnavailable as exc:
                raise InternalException(reason=f"PKCS#11 {operation}: {exc}") from exc
        raise DependencyTimeoutException(
            reason=f"PKCS#11 {operation}: no answer within {timeout * 1000:g} ms"
        )


def _check_key_id(key_id: str) -> None:
    # The router admits only spec-valid ids; this keeps "#" (our version
    # separator) out even if a caller skips it.
    try:
        check_external_key_id(key_id)
    except ValueError as exc:
        raise KeyNotFoundException(reason=str(exc)) from exc


@asynccontextmanager
async def open_pkcs11_backend(settings: Pkcs11Settings) -> AsyncIterator[Pkcs11Backend]:
    """Load the module, check the token, and close everything when done.

    Raises Pkcs11ModuleError if the module cannot be loaded or the token
    refuses the PIN.
    """
    module = await trio.to_thread.run_sync(
        acquire_module, str(settings.module_path), settings.module_environment
    )
    backend = Pkcs11Backend(settings, module)
    try:
        await backend.check_start()
        yield backend
    finally:
        await backend.aclose()
