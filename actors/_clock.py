"""Injectable time: every timer, timeout, backoff, heartbeat and lease reads a Clock.

``RealClock`` runs callbacks on one named scheduler thread (never a thread per
timer, never a sleep inside a mailbox). ``ManualClock`` lets tests move time by
hand: ``advance(seconds)`` fires every due callback in the caller's thread, so a
30 s backoff is tested in microseconds and gives the same result under load.
Callbacks must be short and non-blocking (typically an actor ``tell``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "ManualClock", "RealClock", "TimerHandle"]

log = logging.getLogger(__name__)


class TimerHandle:
    """A scheduled callback; ``cancel()`` is idempotent and thread-safe."""

    __slots__ = ("_canceled", "callback", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self._canceled = False

    def cancel(self) -> None:
        self._canceled = True

    @property
    def canceled(self) -> bool:
        return self._canceled


class Clock(Protocol):
    """What time-dependent code needs: a monotonic reading and one-shot timers."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Wall-clock seconds since the epoch (for timestamps shown to people)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now, on the clock's thread."""
        ...


class _TimerQueue:
    """A heap of timers shared by both clocks."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()

    def push(self, handle: TimerHandle) -> None:
        heapq.heappush(self._heap, (handle.due, next(self._seq), handle))

    def pop_due(self, now: float) -> list[TimerHandle]:
        due: list[TimerHandle] = []
        while self._heap and self._heap[0][0] <= now:
            handle = heapq.heappop(self._heap)[2]
            if not handle.canceled:
                due.append(handle)
        return due

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].canceled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pending(self) -> int:
        return sum(1 for _, _, h in self._heap if not h.canceled)


def _fire(handle: TimerHandle) -> None:
    try:
        handle.callback()
    except Exception:
        log.exception("timer callback %r raised", handle.callback)


class RealClock:
    """Wall time, with timers served by one daemon thread started on first use."""

    def __init__(self, name: str = "actorflow-clock") -> None:
        self._name = name
        self._queue = _TimerQueue()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self.now() + max(0.0, delay), callback)
        with self._cond:
            if self._closed:
                raise RuntimeError("clock is closed")
            self._queue.push(handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def close(self, timeout: float = 2.0) -> None:
        """Stop the timer thread; pending timers never fire."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                due = self._queue.pop_due(self.now())
                if not due:
                    next_due = self._queue.next_due()
                    wait = None if next_due is None else max(0.0, next_due - self.now())
                    self._cond.wait(wait)
                    continue
            for handle in due:
                _fire(handle)


class ManualClock:
    """A clock that moves only when a test calls ``advance``; timers fire in that call."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._queue = _TimerQueue()
        self._cond = threading.Condition()

    def now(self) -> float:
        with self._cond:
            return self._now

    def wall(self) -> float:
        return self.now() + self._wall_offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        with self._cond:
            handle = TimerHandle(self._now + max(0.0, delay), callback)
            self._queue.push(handle)
            self._cond.notify_all()
        return handle

    def pending(self) -> int:
        """Number of timers scheduled and not yet fired or canceled."""
        with self._cond:
            return self._queue.pending()

    def next_delay(self) -> float | None:
        """Seconds until the next timer, or None when none is scheduled."""
        with self._cond:
            due = self._queue.next_due()
            return None if due is None else due - self._now

    def wait_for_timers(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Block until at least ``count`` timers are pending (a test sync point)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue.pending() >= count, timeout):
                raise TimeoutError(f"{count} timer(s) not scheduled within {timeout}s")

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due, in order."""
        with self._cond:
            target = self._now + seconds
        while True:
            with self._cond:
                next_due = self._queue.next_due()
                if next_due is None or next_due > target:
                    self._now = target
                    return
                self._now = max(self._now, next_due)
                due = self._queue.pop_due(self._now)
            for handle in due:
                _fire(handle)
