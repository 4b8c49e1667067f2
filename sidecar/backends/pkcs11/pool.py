"""Logged-in sessions, shared by worker threads, that heal after device errors.

Everything here runs in worker threads (the backend never calls it from the
Trio loop), guarded by one ``threading.Condition``. A call leases a session
(an idle one, or a new one opened and logged in), runs its work on it and
hands it back. The backend's CapacityLimiter admits at most ``pool_size``
calls, so at most that many sessions exist.

Recovery, without restarting the proxy:

* An idle session is checked (C_GetSessionInfo) before it is lent: a
  session that died while idle is dropped before any operation touches it.
  Besides saving a failed call, this keeps python-pkcs11 out of a path it
  handles badly: an operation whose C_*Init fails stays "active" and raises
  again from its finaliser, which Python can only print.
* A call whose session fails (``errors.Damage``) drops that session and runs
  once more on another, if its deadline allows; a failure meaning every
  session is gone drops the idle ones too, unclosed.
* When even a new session cannot be opened, the module has lost its device:
  the pool re-initialises it (C_Finalize, C_Initialize), finds the token
  again (slots may be renumbered) and opens the session anew. It first
  waits, up to ``_DRAIN_WAIT_S``, for every other call to leave the module
  (no new call enters meanwhile): finalising under a running call could
  crash the process. If they do not leave in time, it does not
  re-initialise; a later call will try again.
* A PIN the token refuses is never offered again: each attempt could count
  towards locking the user out. Every call then fails until the PIN is
  fixed and the proxy restarted.

Sessions are opened as public sessions and logged in through ``cryptoki``
(login state belongs to the application, so CKR_USER_ALREADY_LOGGED_IN is
success), and closed with C_CloseSession only: python-pkcs11 would log the
whole application out when closing a session it logged in itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pkcs11.attributes import AttributeMapper
from pkcs11.exceptions import PKCS11Error

from sidecar.backends.pkcs11 import cryptoki as ck
from sidecar.backends.pkcs11.errors import (
    PIN_REFUSALS,
    Damage,
    Pkcs11Failure,
    ckr_of,
    damage,
    describe,
)
from sidecar.backends.pkcs11.module import LoadedModule
from sidecar.backends.pkcs11.pin import Pin

T = TypeVar("T")
logger = logging.getLogger("sidecar.backends.pkcs11")

# The first session, and one fresh one after a session failure.
_ATTEMPTS: Final = 2
# How long a re-initialisation waits for other calls to leave the module.
# Chosen, not measured: well past a healthy call, short of a hung one.
_DRAIN_WAIT_S: Final = 2.0


class PoolUnavailable(Exception):
    """No session can be had: the pool is closed, or the PIN was refused."""


class LoginRefused(PoolUnavailable):
    """The token refused the configured PIN; no further login is tried."""


class _OpenFailed(Exception):
    """A new session could not be opened: the module needs re-initialising."""

    def __init__(self, cause: BaseException, generation: int) -> None:
        super().__init__(describe(cause))
        self.cause = cause
        self.generation = generation


@dataclass(frozen=True, slots=True)
class TokenSelector:
    label: str | None = None
    serial: str | None = None

    def find(self, lib: Any) -> Any:
        """The token (python-pkcs11 Token); NoSuchToken if it is not there."""
        serial = self.serial.encode("ascii") if self.serial is not None else None
        return lib.get_token(token_label=self.label, token_serial=serial)


class Lease:
    """A logged-in session, lent to one call at a time."""

    def __init__(self, session: Any, generation: int, cryptoki: ck.Cryptoki) -> None:
        self.session = session  # python-pkcs11 Session
        self.generation = generation
        self._cryptoki = cryptoki

    def check(self) -> ck.SessionCheck:
        return self._cryptoki.session_check(self.session.handle)

    def logged_in(self) -> bool:
        """True if the session still exists and the user is logged in."""
        return self.check() is ck.SessionCheck.ALIVE

    def token_info(self) -> Any:
        """A fresh C_GetTokenInfo of the session's token (python-pkcs11 Token)."""
        return self.session.token.slot.get_token()


def open_logged_in(
    module: LoadedModule, token: Any, pin: Pin, mapper: AttributeMapper, *, rw: bool
) -> Lease:
    """Open a session on ``token`` and log the normal user in."""
    generation = module.generation
    session = token.open(rw=rw, attribute_mapper=mapper)
    rv = module.cryptoki.login(session.handle, pin.reveal())
    if rv in (ck.CKR_OK, ck.CKR_USER_ALREADY_LOGGED_IN):
        return Lease(session, generation, module.cryptoki)
    _close_quietly(session)
    if rv in PIN_REFUSALS:
        raise LoginRefused(f"the token refused the user PIN (CKR 0x{rv:X})")
    raise ck.Pkcs11CallError("C_Login", rv)


def _close_quietly(session: Any) -> None:
    try:
        session.close()  # a public session: C_CloseSession, no C_Logout
    except PKCS11Error as exc:
        logger.debug("closing a dropped PKCS#11 session: %s", describe(exc))


class SessionPool:
    """Logged-in sessions on one token, for worker threads."""

    def __init__(
        self,
        module: LoadedModule,
        selector: TokenSelector,
        pin: Pin,
        mapper: AttributeMapper,
    ) -> None:
        self.module = module
        self._selector = selector
        self._pin = pin
        self._mapper = mapper
        self._cond = threading.Condition()
        self._idle: list[Lease] = []
        self._leased = 0
        self._active = 0  # calls inside the module, leased or opening
        self._reinitializing = False
        self._token: Any = None
        self._token_generation = -1
        self._refusal: str | None = None
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def leased(self) -> int:
        return self._leased

    def run(self, work: Callable[[Lease], T], deadline: float) -> T:
        """``work`` on a leased session; once more on a fresh one if it broke.

        ``deadline`` is a ``time.monotonic()`` value: no retry starts after
        it, since the caller has stopped waiting.
        """
        failure: BaseException | None = None
        for _ in range(_ATTEMPTS):
            try:
                return self._attempt(work)
            except _OpenFailed as exc:
                failure = exc.cause
                self._reinitialize(exc.generation, exc.cause)
            except Pkcs11Failure as exc:
                if damage(exc) is Damage.NONE:
                    raise
                failure = exc
                logger.warning("PKCS#11 session failed (%s)", describe(exc))
            if time.monotonic() >= deadline:
                break
        assert failure is not None
        raise failure

    def close(self) -> None:
        """Close every idle session; later calls fail with PoolUnavailable."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for lease in idle:
            if lease.generation == self.module.generation:
                _close_quietly(lease.session)

    # --- one attempt ---------------------------------------------------------

    def _attempt(self, work: Callable[[Lease], T]) -> T:
        with self._inside():
            lease = self._lease()
            try:
                result = work(lease)
            except Pkcs11Failure as exc:
                self._settle(lease, damage(exc))
                raise
            except BaseException:
                self._settle(lease, Damage.NONE)
                raise
            self._settle(lease, Damage.NONE)
            return result

    @contextmanager
    def _inside(self) -> Iterator[None]:
        """Count this call as inside the module; wait out a re-initialisation."""
        with self._cond:
            self._cond.wait_for(lambda: not self._reinitializing)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    # --- leasing -------------------------------------------------------------

    def _lease(self) -> Lease:
        with self._cond:
            if self._closed or self._refusal is not None:
                raise PoolUnavailable(self._refusal or "the session pool is closed")
            idle = self._take_idle()
            self._leased += 1
        try:
            if idle is not None and self._usable(idle):
                return idle
            return self._open()
        except BaseException:
            with self._cond:
                self._leased -= 1
            raise

    def _take_idle(self) -> Lease | None:
        while self._idle:
            lease = self._idle.pop()
            if lease.generation == self.module.generation:
                return lease
            # From before a re-initialisation: the handle means nothing now.
        return None

    def _usable(self, lease: Lease) -> bool:
        """True if ``lease`` is alive; otherwise it (and maybe all idle) goes."""
        check = lease.check()
        if check is ck.SessionCheck.ALIVE:
            return True
        if check is ck.SessionCheck.LOGGED_OUT:
            _close_quietly(lease.session)
            dropped = 0
        else:
            with self._cond:
                dropped, self._idle = len(self._idle), []
        logger.warning(
            "an idle PKCS#11 session is %s; dropped it and %d other(s)",
            check.value,
            dropped,
        )
        return False

    def _open(self) -> Lease:
        generation = self.module.generation
        try:
            if self._token is None or self._token_generation != generation:
                self._token = self._selector.find(self.module.lib)
                self._token_generation = generation
            return open_logged_in(
                self.module, self._token, self._pin, self._mapper, rw=False
            )
        except LoginRefused as exc:
            self._refuse(str(exc))
            raise
        except Pkcs11Failure as exc:
            if ckr_of(exc) == ck.CKR_SESSION_COUNT:
                raise  # the token is busy, not broken
            raise _OpenFailed(exc, generation) from exc

    def _refuse(self, why: str) -> None:
        with self._cond:
            if self._refusal is None:
                logger.error("%s; no login will be tried again until restart", why)
            self._refusal = why

    # --- re-initialising ------------------------------------------------------

    def _reinitialize(self, seen_generation: int, cause: BaseException) -> None:
        """Finalise and initialise the module, unless another call just did."""
        with self._cond:
            if self.module.generation != seen_generation or self._reinitializing:
                self._cond.wait_for(lambda: not self._reinitializing)
                return
            self._reinitializing = True
            try:
                if not self._cond.wait_for(lambda: self._active == 0, _DRAIN_WAIT_S):
                    logger.warning("PKCS#11 calls still running; not re-initialising")
                    return
                logger.warning(
                    "cannot open a PKCS#11 session (%s); re-initialising the module",
                    describe(cause),
                )
                self._idle, self._token = [], None
                self.module.reinitialize()
            finally:
                self._reinitializing = False
                self._cond.notify_all()

    # --- returning -------------------------------------------------------------

    def _settle(self, lease: Lease, harm: Damage) -> None:
        current = lease.generation == self.module.generation
        with self._cond:
            self._leased -= 1
            if harm is Damage.NONE and current and not self._closed:
                self._idle.append(lease)
                return
            dropped = 0
            if harm is Damage.GONE:
                dropped, self._idle = len(self._idle), []
        # A GONE session, or one from an older generation, is not closed: the
        # module has forgotten its handle, which may by now name another one.
        if current and harm is not Damage.GONE:
            _close_quietly(lease.session)
        if harm is not Damage.NONE:
            logger.warning(
                "dropped a failed PKCS#11 session (%s), and %d idle one(s)",
                harm.value,
                dropped,
            )
