"""Key managers behind the proxy: the KeyManager interface and its drivers.

``base`` defines the interface the XKS service calls. Each driver is a
*backend kind*, named by ``kind`` in a ``[backend.<name>]`` table of the
configuration (``sidecar.config_backends`` turns that table into the kind's
typed settings); ``open_backend`` opens one from its settings:

    kind          driver                          settings
    cryptohub     sidecar.backends.cryptohub      CryptoHubSettings
    pkcs11        sidecar.backends.pkcs11         Pkcs11Settings

A driver module is imported only when a backend of its kind is opened, so
importing the interface does not pull in every driver and its dependencies
(the PKCS#11 driver's library is an optional install).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from sidecar.backends.base import KeyManager

if TYPE_CHECKING:
    from sidecar.backends.base import NodeStatus


class Backend(KeyManager, Protocol):
    """A KeyManager that can also deep-check its HSM nodes (``sidecar.health``)."""

    async def probe(self, health_key_id: str) -> list[NodeStatus]: ...


BackendOpener = Callable[[object], AbstractAsyncContextManager[Backend]]


def _open_cryptohub(settings: object) -> AbstractAsyncContextManager[Backend]:
    from sidecar.backends.cryptohub import CryptoHubSettings, open_cryptohub_backend

    if not isinstance(settings, CryptoHubSettings):
        raise TypeError(f"cryptohub backend given {type(settings).__name__}")
    return open_cryptohub_backend(settings)


def _open_pkcs11(settings: object) -> AbstractAsyncContextManager[Backend]:
    from sidecar.backends.pkcs11 import Pkcs11Settings, open_pkcs11_backend

    if not isinstance(settings, Pkcs11Settings):
        raise TypeError(f"pkcs11 backend given {type(settings).__name__}")
    return open_pkcs11_backend(settings)


KINDS: Mapping[str, BackendOpener] = {
    "cryptohub": _open_cryptohub,
    "pkcs11": _open_pkcs11,
}


def open_backend(kind: str, settings: object) -> AbstractAsyncContextManager[Backend]:
    """Open a backend of ``kind``; it is closed when the ``async with`` ends."""
    try:
        opener = KINDS[kind]
    except KeyError:
        known = sorted(KINDS)
        raise ValueError(f"unknown backend kind {kind!r}; known: {known}") from None
    return opener(settings)
