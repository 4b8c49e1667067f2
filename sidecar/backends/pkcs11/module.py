"""The PKCS#11 module, loaded once per process and initialised for threads.

A PKCS#11 library is process-wide state: one C_Initialize, one C_Finalize,
however many callers. ``acquire_module`` loads a library the first time it
is asked for and counts its users; the last ``release_module`` finalises it
(the library stays loaded: unloading and reloading native code buys nothing
and risks a crash). The backend, the admin tool and the tests all go
through here, so they never initialise a module twice.

Loading goes through python-pkcs11, which initialises with
``C_Initialize(NULL)``; we finalise at once and initialise again with
``CKF_OS_LOCKING_OK`` (``cryptoki.py`` explains why). python-pkcs11's own
``initialize``/``finalize`` are never called after that: its bookkeeping
says "not initialised" while the module is, which only matters to those two
methods.

``reinitialize`` (C_Finalize then C_Initialize) is how the session pool
recovers a module that lost its device. It invalidates every session and
object handle, so ``generation`` counts re-initialisations and the pool
drops any session from an older one without touching its handle.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pkcs11
from pkcs11.exceptions import PKCS11Error

from sidecar.backends.base import BackendStartupError
from sidecar.backends.pkcs11.cryptoki import (
    CKR_CRYPTOKI_ALREADY_INITIALIZED,
    CKR_OK,
    Cryptoki,
    Pkcs11CallError,
)

logger = logging.getLogger("sidecar.backends.pkcs11")


class Pkcs11ModuleError(BackendStartupError):
    """The PKCS#11 library cannot be loaded or initialised."""


class LoadedModule:
    """One PKCS#11 library in this process."""

    def __init__(self, path: str, lib: Any, cryptoki: Cryptoki) -> None:
        self.path = path
        self.lib = lib  # python-pkcs11's handle on the library
        self.cryptoki = cryptoki
        self.generation = 0
        self.users = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        rv = self.cryptoki.initialize()
        if rv == CKR_CRYPTOKI_ALREADY_INITIALIZED:
            raise Pkcs11ModuleError(
                f"{self.path} was initialised by other code in this process"
            )
        if rv != CKR_OK:
            raise Pkcs11ModuleError(f"C_Initialize of {self.path}: CKR 0x{rv:X}")

    def stop(self) -> None:
        self.cryptoki.finalize()  # CKR_CRYPTOKI_NOT_INITIALIZED is fine here

    def reinitialize(self) -> None:
        """C_Finalize then C_Initialize; every session and handle is gone."""
        with self._lock:
            self.cryptoki.finalize()
            rv = self.cryptoki.initialize()
            self.generation += 1
        if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise Pkcs11CallError("C_Initialize", rv)
        logger.warning(
            "re-initialised PKCS#11 module %s (generation %d)",
            self.path,
            self.generation,
        )


_registry_lock = threading.Lock()
_modules: dict[str, LoadedModule] = {}


def _load(path: str) -> LoadedModule:
    try:
        lib = pkcs11.lib(path)
        if lib.initialized:
            lib.finalize()
        return LoadedModule(path, lib, Cryptoki(path))
    except (PKCS11Error, OSError, Pkcs11CallError) as exc:
        raise Pkcs11ModuleError(f"cannot load PKCS#11 module {path}: {exc}") from exc


Environment = tuple[tuple[str, str], ...]


def acquire_module(path: str, environment: Environment = ()) -> LoadedModule:
    """The library at ``path``, initialised; pair with ``release_module``.

    Blocking (it may load a library and reach a device): call it from a
    worker thread in async code. ``environment`` is set first, since modules
    read their configuration file's location (FXPKCS11_CFG, SOFTHSM2_CONF)
    when they initialise.
    """
    with _registry_lock:
        os.environ.update(dict(environment))
        module = _modules.get(path)
        if module is None:
            module = _modules[path] = _load(path)
        if module.users == 0:
            module.start()
        module.users += 1
        return module


def release_module(module: LoadedModule) -> None:
    """One user fewer; the last one finalises the module."""
    with _registry_lock:
        module.users -= 1
        if module.users == 0:
            module.stop()
