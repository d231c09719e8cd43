"""LockManager: lease-based named locks with monotonically increasing fencing tokens.

One LockManager actor serves a cluster (on the node named by
``ActorSystem(locks_on=...)``). A grant carries a fencing token, larger than
every token granted before by this manager; a resource that remembers the
largest token it has seen can refuse a stale holder's late writes (Kleppmann's
fencing). A lease that is not renewed expires; the lock then goes to the next
waiter. Tokens start from the wall clock in milliseconds, so they keep growing
across restarts of the manager's process (given a clock that does not jump back).

All requests are tells carrying a ``reply`` callback (called from the
manager's thread, must not block): waiters are parked in the manager, never in
a blocked thread, so a coordinator can wait for a lock without blocking its
mailbox. Errors in replies are ``NotLockOwner`` / ``NotLocked`` / ``LockTimeout``.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors._clock import Clock, TimerHandle
from actors._errors import LockTimeout, NotLocked, NotLockOwner

__all__ = ["Acquire", "Check", "LockGrant", "LockManager", "Release", "Renew"]

log = logging.getLogger(__name__)

Reply = Callable[[Any], None]  # called with a LockGrant, True, or an exception instance


@dataclass(frozen=True)
class LockGrant:
    """The caller holds ``name`` with ``token`` until ``expires_in`` seconds from the grant."""

    name: str
    token: int
    expires_in: float


@dataclass(frozen=True)
class Acquire:
    name: str
    owner: str
    lease: float
    timeout: float | None  # None: wait as long as it takes; 0: try once
    reply: Reply


@dataclass(frozen=True)
class Release:
    name: str
    token: int
    reply: Reply


@dataclass(frozen=True)
class Renew:
    name: str
    token: int
    lease: float
    reply: Reply


@dataclass(frozen=True)
class Check:
    """Is ``token`` the current holder's? Replies True, or NotLockOwner / NotLocked."""

    name: str
    token: int
    reply: Reply


@dataclass(frozen=True)
class _Expire:
    name: str
    token: int


@dataclass(frozen=True)
class _GiveUp:
    waiter_id: int


@dataclass(eq=False)
class _Held:
    owner: str
    token: int
    expires_at: float
    timer: TimerHandle | None = None


@dataclass(eq=False)
class _Waiter:
    waiter_id: int
    request: Acquire
    timer: TimerHandle | None = field(default=None)


class LockManager(pykka.ThreadingActor):
    """Serves named leases; all state lives in this actor's thread."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._waiting: dict[str, collections.deque[_Waiter]] = collections.defaultdict(
            collections.deque
        )
        self._last_token = int(clock.wall() * 1000)
        self._waiter_ids = itertools.count(1)

    def on_receive(self, message: Any) -> Any:
        try:
            return self._handle(message)
        except Exception as exc:  # a bad request is answered, never allowed to stop the manager
            reply = getattr(message, "reply", None)
            if reply is None:
                raise
            log.warning("lock manager refused %r: %s", message, exc)
            self._answer(reply, exc)
            return None

    def _handle(self, message: Any) -> Any:
        if isinstance(message, Acquire):
            self._acquire(message)
        elif isinstance(message, Release):
            self._release(message)
        elif isinstance(message, Renew):
            self._renew(message)
        elif isinstance(message, Check):
            self._answer(message.reply, self._verify(message.name, message.token))
        elif isinstance(message, _Expire):
            held = self._held.get(message.name)
            if held is not None and held.token == message.token:
                del self._held[message.name]
                self._grant_next(message.name)
        elif isinstance(message, _GiveUp):
            self._give_up(message.waiter_id)
        elif message == "stats":
            return {name: (h.owner, h.token) for name, h in self._held.items()}
        else:
            raise TypeError(f"lock manager got unknown message {message!r}")
        return None

    @staticmethod
    def _answer(reply: Reply, value: Any) -> None:
        try:
            reply(value)
        except Exception:  # a broken reply channel must not stop the manager
            log.exception("lock reply %r failed", reply)

    def _next_token(self) -> int:
        self._last_token = max(self._last_token + 1, int(self._clock.wall() * 1000))
        return self._last_token

    def _acquire(self, request: Acquire) -> None:
        if request.lease <= 0:
            self._answer(request.reply, ValueError(f"lease must be > 0, got {request.lease!r}"))
            return
        if request.name not in self._held and not self._waiting[request.name]:
            self._grant(request)
            return
        if request.timeout is not None and request.timeout <= 0:
            self._answer(request.reply, LockTimeout(f"lock {request.name!r} is held"))
            return
        waiter = _Waiter(next(self._waiter_ids), request)
        if request.timeout is not None:
            me = self.actor_ref
            waiter.timer = self._clock.call_later(
                request.timeout, lambda: me.tell(_GiveUp(waiter.waiter_id))
            )
        self._waiting[request.name].append(waiter)

    def _grant(self, request: Acquire) -> None:
        token = self._next_token()
        held = _Held(request.owner, token, self._clock.now() + request.lease)
        me, name = self.actor_ref, request.name
        held.timer = self._clock.call_later(request.lease, lambda: me.tell(_Expire(name, token)))
        self._held[request.name] = held
        self._answer(request.reply, LockGrant(request.name, token, request.lease))

    def _grant_next(self, name: str) -> None:
        queue = self._waiting.get(name)
        while queue:
            waiter = queue.popleft()
            if waiter.timer is not None:
                waiter.timer.cancel()
            self._grant(waiter.request)
            return

    def _give_up(self, waiter_id: int) -> None:
        for name, queue in self._waiting.items():
            for waiter in queue:
                if waiter.waiter_id == waiter_id:
                    queue.remove(waiter)
                    self._answer(
                        waiter.request.reply,
                        LockTimeout(f"lock {name!r} not acquired within {waiter.request.timeout}s"),
                    )
                    return

    def _verify(self, name: str, token: int) -> Any:
        held = self._held.get(name)
        if held is None:
            return NotLocked(f"lock {name!r} is not held")
        if held.token != token:
            return NotLockOwner(
                f"lock {name!r}: token {token} is not the holder's (current token {held.token})"
            )
        return True

    def _release(self, request: Release) -> None:
        verdict = self._verify(request.name, request.token)
        if verdict is True:
            held = self._held.pop(request.name)
            if held.timer is not None:
                held.timer.cancel()
            self._grant_next(request.name)
        self._answer(request.reply, verdict)

    def _renew(self, request: Renew) -> None:
        verdict = self._verify(request.name, request.token)
        if verdict is True:
            held = self._held[request.name]
            if held.timer is not None:
                held.timer.cancel()
            held.expires_at = self._clock.now() + request.lease
            me, name, token = self.actor_ref, request.name, request.token
            held.timer = self._clock.call_later(
                request.lease, lambda: me.tell(_Expire(name, token))
            )
            verdict = LockGrant(request.name, request.token, request.lease)
        self._answer(request.reply, verdict)
