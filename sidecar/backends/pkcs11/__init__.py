"""The PKCS#11 backend: a KeyManager over any PKCS#11 token (python-pkcs11).

Modules, each with one job:

    settings    Pkcs11Settings, IvSource, KeyIdAttribute (frozen, checked once)
    pin         the user PIN from a private file or a variable, masked
    labels      external key ids, key versions and their labels (pure)
    attributes  spec, usages and state from a key's attributes
    cryptoki    the few Cryptoki calls made through ctypes, and why
    module      the library, loaded once per process, initialised for threads
    errors      what a failure did to the session; the XKS error for it
    pool        logged-in sessions for worker threads, and their recovery
    gcm         CKM_AES_GCM, with the IV drawn by us or by the token
    operations  describe, encrypt, decrypt on a leased session
    health      the deep probe of the token, as the CryptoHub backend's
    backend     Pkcs11Backend: worker threads, deadlines, cache
    keyadmin    create, rotate, disable, enable, destroy keys (admin side)
    admin       ``python -m sidecar.backends.pkcs11.admin keys ...``
    provision   ``python -m sidecar.backends.pkcs11.provision``: test keys

docs/backend-pkcs11.md is the prose version.
"""

from sidecar.backends.pkcs11.backend import Pkcs11Backend, open_pkcs11_backend
from sidecar.backends.pkcs11.module import Pkcs11ModuleError
from sidecar.backends.pkcs11.pin import Pin, PinSourceError, read_pin_env, read_pin_file
from sidecar.backends.pkcs11.settings import (
    IvSource,
    KeyIdAttribute,
    Pkcs11ConfigError,
    Pkcs11Settings,
)

__all__ = [
    "IvSource",
    "KeyIdAttribute",
    "Pin",
    "PinSourceError",
    "Pkcs11Backend",
    "Pkcs11ConfigError",
    "Pkcs11ModuleError",
    "Pkcs11Settings",
    "open_pkcs11_backend",
    "read_pin_env",
    "read_pin_file",
]
