"""A ``.locked(name, lease)`` part: hold a lease lock, with its fencing token, around it.

The coordinator never waits for the lock: the manager parks the request and
the grant comes back as a message. While held, the lease is renewed every
third of it; a canceled part gives the lock back at once; a grant that comes
after the run ended is given back, not held until its lease runs out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from actors import LockGrant
from runtime.engine._frame import Frame
from runtime.engine._outcome import Continuation, Err, Ok, Outcome
from runtime.engine._ports import LockService
from runtime.engine._timers import Timers
from runtime.workflow import Locked

__all__ = ["LockedSection"]

log = logging.getLogger(__name__)

_Run = Callable[[Frame, Continuation], None]  # runs the inner part in a frame


def _ignore(_answer: Any) -> None:
    """A release's answer: nothing to do (a lock already gone is as good as released)."""


class LockedSection:
    """One execution of a locked part, from acquire to release (coordinator thread)."""

    def __init__(
        self,
        part: Locked,
        run_id: str,
        locks: LockService,
        timers: Timers,
        frame: Frame,
        cont: Continuation,
    ) -> None:
        self._part = part
        self._run_id = run_id
        self._locks = locks
        self._timers = timers
        self._frame = frame
        self._cont = cont
        self._token: int | None = None  # set while held
        self._lost: BaseException | None = None  # the lease is gone: must not finish OK
        self._inner: _Run | None = None

    def start(self, inner: _Run) -> None:
        """Ask for the lock; once granted, ``inner(frame_with_token, after)`` runs the part."""
        self._inner = inner
        part = self._part
        self._locks.request(
            "acquire",
            {
                "name": part.lock,
                "owner": f"run {self._run_id}",
                "lease": part.lease,
                "timeout": part.wait_timeout,
            },
            self._timers.later(self._granted, on_dead=self._give_back),
        )

    def _granted(self, answer: Any) -> None:
        if isinstance(answer, BaseException):
            self._cont(Err(answer))
            return
        if self._frame.scope.canceled:
            self._release_token(answer.token)
            return
        self._token = answer.token
        self._frame.scope.on_cancel(lambda _reason: self._release())  # give it back at once
        self._renew_later()
        held = dataclasses.replace(
            self._frame, locks=(*self._frame.locks, (self._part.lock, answer.token))
        )
        assert self._inner is not None
        self._inner(held, self._after)

    def _give_back(self, answer: Any) -> None:
        """A grant that reached a stopped run (any thread)."""
        if isinstance(answer, LockGrant):
            self._release_token(answer.token)

    def _renew_later(self) -> None:
        self._timers.schedule(self._frame.scope, self._part.lease / 3, self._renew)

    def _renew(self) -> None:
        if self._token is None:
            return
        self._locks.request(
            "renew",
            {"name": self._part.lock, "token": self._token, "lease": self._part.lease},
            self._timers.later(self._renewed),
        )

    def _renewed(self, answer: Any) -> None:
        if isinstance(answer, BaseException):
            self._lost = answer
            log.error("run %s: lock %r lost: %s", self._run_id, self._part.lock, answer)
        elif self._token is not None:
            self._renew_later()

    def _release(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._release_token(token)

    def _release_token(self, token: int) -> None:
        self._locks.request("release", {"name": self._part.lock, "token": token}, _ignore)

    def _after(self, outcome: Outcome) -> None:
        self._release()
        if isinstance(outcome, Ok) and self._lost is not None:
            outcome = Err(self._lost)
        self._cont(outcome)
