"""NodePool: recycles idle node actors so a step does not pay for a new thread.

Starting a pykka actor starts an OS thread (~300 us on a 2-core machine),
more than a short step costs. A finished node goes back to the pool; the next
step re-binds it with ``Assign`` (a fresh state machine, same mailbox and
thread). At most ``max_idle`` idle actors are kept; the rest are stopped.
Only nodes whose task has returned may be released: a node still running an
abandoned task (timed out or canceled) must be stopped instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors._clock import Clock
from actors._node import Assign, NodeActor, Start, StepResult
from actors._notify import NotifyingEvent
from actors.events import Event

__all__ = ["NodePool"]


class NodePool:
    """Thread-safe pool of idle ``NodeActor`` refs for one actor system."""

    def __init__(self, clock: Clock, *, max_idle: int = 64) -> None:
        if max_idle < 0:
            raise ValueError(f"max_idle must be >= 0, got {max_idle!r}")
        self._clock = clock
        self._max_idle = max_idle
        self._idle: list[pykka.ActorRef[NodeActor]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.spawned = 0
        self.reused = 0

    def acquire(
        self,
        step: str,
        fn: Callable[[Any], Any],
        *,
        run_id: str,
        emit: Callable[[Event], None],
        report: Callable[[StepResult], None],
        cancel_event: NotifyingEvent,
        node: str = "",
        start: Start | None = None,
    ) -> pykka.ActorRef[NodeActor]:
        """A node actor bound to this step: an idle one re-bound, or a new one.

        With ``start``, its first attempt starts too (in the same message, for a
        pooled one).
        """
        with self._lock:
            ref = self._idle.pop() if self._idle else None
            if ref is not None:
                self.reused += 1
        if ref is not None:
            ref.tell(Assign(step, fn, run_id, emit, report, cancel_event, node, start))
            return ref
        with self._lock:
            self.spawned += 1
        ref = NodeActor.start(
            step,
            fn,
            run_id=run_id,
            clock=self._clock,
            emit=emit,
            report=report,
            cancel_event=cancel_event,
            node=node,
        )
        if start is not None:
            ref.tell(start)
        return ref

    def release(self, ref: pykka.ActorRef[NodeActor]) -> None:
        """Give back a node whose task has returned; stopped if the pool is full or closed."""
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle and ref.is_alive():
                self._idle.append(ref)
                return
        ref.stop(block=False)

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every idle node actor and wait for them."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for ref in idle:
            ref.stop(block=False)
        for ref in idle:
            ref.actor_stopped.wait(timeout)
