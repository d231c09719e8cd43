"""Timers and cross-thread callbacks of one coordinator: each comes back as a message.

Nothing in the coordinator sleeps or blocks. A backoff, a step timeout or a
lease renewal is a clock timer whose firing is a ``Wake`` message to the
coordinator; an answer from another thread (a lock grant) is handed over the
same way. So every callback runs in the coordinator's thread, one at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors import Clock, TimerHandle
from runtime.engine._scope import CancelScope

__all__ = ["Timers", "Wake"]


@dataclass(frozen=True)
class Wake:
    """Coordinator message: run the callback registered under ``token``."""

    token: int


class Timers:
    """Owns every pending timer and hand-over of one run (used from its coordinator thread)."""

    def __init__(self, clock: Clock, inbox: pykka.ActorRef[Any]) -> None:
        self._clock = clock
        self.inbox = inbox  # the coordinator: every Wake goes there
        self._tokens = itertools.count(1)
        self._callbacks: dict[int, Callable[[], None]] = {}  # token -> what a Wake runs
        self._timers: dict[int, TimerHandle] = {}  # token -> its clock timer, until it fires
        self._orphans: dict[int, Callable[[], None]] = {}  # answers owed to a stopped run

    def now(self) -> float:
        return self._clock.now()

    def schedule(
        self, scope: CancelScope, delay: float, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Run ``callback`` after ``delay`` s unless ``scope`` is canceled first.

        Returns a function that cancels it; fired or canceled, nothing is left behind.
        """
        token = next(self._tokens)
        inbox = self.inbox

        def ring() -> None:  # the clock's thread
            with contextlib.suppress(pykka.ActorDeadError):  # the run ended meanwhile
                inbox.tell(Wake(token))

        def cancel() -> None:
            timer = self._timers.pop(token, None)
            if timer is not None:
                timer.cancel()
            self._callbacks.pop(token, None)
            unhook()

        def fired() -> None:
            self._timers.pop(token, None)
            unhook()
            callback()

        unhook = scope.on_cancel(lambda _reason: cancel())
        self._callbacks[token] = fired
        self._timers[token] = self._clock.call_later(delay, ring)
        return cancel

    def soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` from a fresh message (a long replayed chain needs no deep stack)."""
        token = next(self._tokens)
        self._callbacks[token] = callback
        self.inbox.tell(Wake(token))

    def later(
        self, handler: Callable[[Any], None], on_dead: Callable[[Any], None] | None = None
    ) -> Callable[[Any], None]:
        """A thread-safe ``deliver(value)`` that runs ``handler(value)`` in the coordinator.

        With ``on_dead``, a value the coordinator can no longer handle (it stopped
        before or while the value came) goes to ``on_dead(value)`` instead, in
        whichever thread delivered it or stopped the coordinator. Exactly one of
        the two ever takes the value.
        """
        token = next(self._tokens)
        box: list[Any] = []
        guard = threading.Lock()
        settled = [False]  # handler or on_dead took the value
        gone = [False]  # the coordinator stopped: on_dead takes what comes

        def take() -> bool:
            with guard:
                if not box or settled[0]:
                    return False
                settled[0] = True
                return True

        def here() -> None:
            self._orphans.pop(token, None)
            if take():
                handler(box[0])

        self._callbacks[token] = here
        if on_dead is not None:
            dead = on_dead

            def orphaned() -> None:
                with guard:
                    gone[0] = True
                if take():
                    dead(box[0])

            self._orphans[token] = orphaned

        inbox = self.inbox

        def deliver(value: Any) -> None:
            with guard:
                box.append(value)
                stopped = gone[0]
            if not stopped:
                try:
                    inbox.tell(Wake(token))
                    return
                except pykka.ActorDeadError:
                    pass
            if on_dead is not None and take():
                on_dead(value)

        return deliver

    def fire(self, wake: Wake) -> None:
        """The coordinator got ``wake``: run its callback (nothing if canceled meanwhile)."""
        callback = self._callbacks.pop(wake.token, None)
        if callback is not None:
            callback()

    def cancel_all(self) -> None:
        """The run is over: no timer of it may fire later."""
        timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()

    def settle_orphans(self) -> None:
        """The coordinator stopped: hand every value still owed to it to its ``on_dead``."""
        orphans, self._orphans = list(self._orphans.values()), {}
        for orphaned in orphans:
            orphaned()

    @property
    def pending(self) -> int:
        """Timers not yet fired or canceled (for tests of clean-up)."""
        return len(self._timers)
