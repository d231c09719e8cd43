"""Events a run emits, the observer protocol, and the bus that delivers them.

Events are plain frozen records. ``step`` is the step key, or ``None`` for an
event about the whole run. The ``EventBus`` delivers events on one named
dispatcher thread in the order they were emitted, so an observer sees a run's
events in causal order, and a slow or raising observer never stalls a mailbox
or breaks a run (a raising observer is logged and keeps receiving).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

from actors._state import StateChanged

__all__ = [
    "Canceled",
    "Checkpointed",
    "Completed",
    "Event",
    "EventBus",
    "Failed",
    "NodeDown",
    "NodeUp",
    "Planned",
    "Retrying",
    "Started",
    "WorkflowObserver",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    """A run (``step is None``) or one attempt of a step started."""

    run_id: str
    step: str | None
    attempt: int = 1
    node: str = ""
    timestamp: float = 0.0


@dataclass(frozen=True)
class Completed:
    """A run or a step completed; ``duration`` in seconds."""

    run_id: str
    step: str | None
    attempts: int = 1
    duration: float = 0.0
    timestamp: float = 0.0


@dataclass(frozen=True)
class Failed:
    """A run or a step attempt failed; ``final`` is False when a retry follows."""

    run_id: str
    step: str | None
    error: BaseException
    attempts: int = 1
    final: bool = True
    timestamp: float = 0.0


@dataclass(frozen=True)
class Retrying:
    """A failed step will run again as ``attempt`` after ``delay`` seconds."""

    run_id: str
    step: str
    attempt: int
    delay: float
    error: BaseException
    timestamp: float = 0.0


@dataclass(frozen=True)
class Canceled:
    """A run or a step was canceled."""

    run_id: str
    step: str | None
    reason: str = ""
    timestamp: float = 0.0


@dataclass(frozen=True)
class Checkpointed:
    """The run's state was written to its store after ``step`` (epoch fences the writer)."""

    run_id: str
    step: str | None
    epoch: int
    timestamp: float = 0.0


@dataclass(frozen=True)
class Planned:
    """How many task steps the run will run at most, as far as it knows now.

    Emitted when the run starts (from the workflow's static structure), then
    whenever that changes: a ``map_items`` or ``dynamic`` part starting adds
    its steps (so ``total`` can grow), a ``when(skip=True)`` part skipped
    takes its steps off. ``open`` counts the map and dynamic parts not yet
    started: while it is above 0 the total may still grow. ``resumed`` counts
    the steps taken from a checkpoint on a resume (done, but never run, so
    they have no ``Completed`` event). A run-level event: it never travels
    between nodes, and like every event here it holds only plain values.
    """

    run_id: str
    total: int
    open: int = 0
    resumed: int = 0
    part: str = ""  # the part whose start or skip changed the plan; "" at the run's start
    timestamp: float = 0.0

    step: None = None  # always the whole run, like a run-level event's ``step``


@dataclass(frozen=True)
class NodeUp:
    """A cluster member joined or came back."""

    node: str
    timestamp: float = 0.0


@dataclass(frozen=True)
class NodeDown:
    """A cluster member was declared down (or left)."""

    node: str
    reason: str = ""
    timestamp: float = 0.0


Event: TypeAlias = (
    Started
    | Completed
    | Failed
    | Retrying
    | Canceled
    | Checkpointed
    | Planned
    | StateChanged
    | NodeUp
    | NodeDown
)


@runtime_checkable
class WorkflowObserver(Protocol):
    """Receives events on the bus's dispatcher thread; must not block for long."""

    def on_event(self, event: Event) -> None: ...


ObserverFilter: TypeAlias = Callable[[Event], bool]


@dataclass(eq=False)
class _Subscription:
    observer: WorkflowObserver
    accepts: ObserverFilter = field(default=lambda _event: True)


@dataclass(frozen=True)
class _Call:
    callback: Callable[[], None]


_STOP = object()


class EventBus:
    """Ordered, asynchronous delivery of events to observers.

    ``emit`` may be called from any thread and never blocks. ``call_soon``
    queues a callable behind every event emitted before it (used to resolve a
    run's result only after its observers have seen the final event).
    """

    def __init__(self, name: str = "actorflow-events") -> None:
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def subscribe(
        self, observer: WorkflowObserver, accepts: ObserverFilter | None = None
    ) -> Callable[[], None]:
        """Deliver events emitted from now on (those ``accepts`` returns True for).

        Returns a function that unsubscribes.
        """
        if not callable(getattr(observer, "on_event", None)):
            raise TypeError(f"observer must have an on_event(event) method, got {observer!r}")
        subscription = _Subscription(observer, accepts or (lambda _event: True))
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]

        def unsubscribe() -> None:
            with self._lock:
                self._subscriptions = [s for s in self._subscriptions if s is not subscription]

        return unsubscribe

    def emit(self, event: Event) -> None:
        # No subscriber now: nobody can ever see this event, so skip the queue
        # (an observer only receives events emitted after it subscribed).
        if self._subscriptions and not self._closed:
            self._queue.put(event)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the dispatcher after every event emitted so far."""
        self._queue.put(_Call(callback))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event emitted so far was delivered; False on timeout."""
        done = threading.Event()
        self.call_soon(done.set)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the dispatcher thread."""
        self._closed = True
        self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Call):
                try:
                    item.callback()
                except BaseException:  # user code: even SystemExit must not kill the bus
                    log.exception("event bus callback %r raised", item.callback)
                continue
            for subscription in self._subscriptions:
                self._deliver(subscription, item)  # type: ignore[arg-type]

    @staticmethod
    def _deliver(subscription: _Subscription, event: Event) -> None:
        try:
            if subscription.accepts(event):
                subscription.observer.on_event(event)
        except BaseException:  # observers are user code: SystemExit must not kill the bus
            log.exception(
                "observer %r raised on %r; it stays subscribed", subscription.observer, event
            )
