"""Member-event subscribers: callbacks added from any thread, each event published by the
I/O thread, every callback run on the notify thread (user code never runs on the I/O
thread, and a slow callback delays only the ones after it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from transport._membership import MemberEvent
from transport._workers import SerialWorker

__all__ = ["Subscribers"]


class Subscribers:
    """The callbacks of ``Transport.subscribe``. Thread-safe.

    Args:
        notifier: the worker that runs the callbacks, in order.
    """

    def __init__(self, notifier: SerialWorker) -> None:
        self._notifier = notifier
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[MemberEvent], None]] = []

    def add(self, callback: Callable[[MemberEvent], None]) -> None:
        """(Any thread) Call ``callback(event)`` on every later event."""
        with self._lock:
            self._callbacks.append(callback)

    def publish(self, event: MemberEvent) -> None:
        """(I/O thread) Queue ``event`` for every callback; never waits for them."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            self._notifier.submit(partial(callback, event))
