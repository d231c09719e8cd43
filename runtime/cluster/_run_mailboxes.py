"""RunMailboxes: the coordinator's side of remote steps, at ``$run/<run_id>``.

Which nodes each run placed steps on (only those may speak for the run), and
the delivery of what they send back: a step event goes to the event bus, a
result to the run's coordinator, its state changes to the bus just before it.
Runs on the I/O thread (``Cluster.deliver_nowait``) or the dispatch thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pykka

from actors import EventBus
from runtime.cluster._local import LocalNode
from runtime.cluster._messages import StepOutcome, is_step_event, step_events
from transport import RateLimitedLog

__all__ = ["RunMailboxes"]

log = logging.getLogger(__name__)


class RunMailboxes:
    """The ``$run/<run_id>`` mailboxes of the runs this node coordinates. Thread-safe."""

    def __init__(self, bus: EventBus, local: LocalNode) -> None:
        self._bus = bus
        self._local = local
        self._log = RateLimitedLog(log)  # per-message warnings, one per reason every 5 s
        self._lock = threading.Lock()
        self._placed: dict[str, set[str]] = {}  # run id -> nodes its steps were sent to

    def placed(self, run_id: str, node: str) -> None:
        """A step of ``run_id`` was sent to ``node``: from now on it may speak for the run."""
        with self._lock:
            self._placed.setdefault(run_id, set()).add(node)

    def ended(self, run_id: str) -> None:
        with self._lock:
            self._placed.pop(run_id, None)

    def deliver(self, run_id: str, message: Any, sender: str, *, nowait: bool = False) -> bool:
        """Hand a remote step's events to the bus, or its result to the run's coordinator.

        A result's state changes go to the bus just before the result goes to
        the coordinator, so observers see them before whatever the coordinator
        then emits. Only a node running one of the run's steps may speak for
        it: events from another are dropped (its result, too, by the run).
        False (nothing done) with ``nowait`` when the run is not active here:
        the dispatch thread then logs the drop.

        Raises:
            ProtocolError: the message does not decode.
        """
        if is_step_event(message):
            events = step_events(message)
            if self._placed_on(run_id, sender):
                for event in events:
                    self._bus.emit(event)
            return True
        outcome = StepOutcome.decode(message, run=run_id, sender=sender)
        ref = self._local.coordinator(run_id)
        if ref is None:
            if not nowait:
                log.info("result for run %s dropped: the run is not active here", run_id)
            return False
        if outcome.changes and self._placed_on(run_id, sender):
            for change in outcome.changes:
                self._bus.emit(change)
        try:
            ref.tell(outcome)
        except pykka.ActorDeadError:
            log.info("result for run %s dropped: the run has ended", run_id)
        return True

    def _placed_on(self, run_id: str, sender: str) -> bool:
        with self._lock:
            placed = sender in self._placed.get(run_id, ())
        if not placed:
            self._log.warning(
                "foreign_event",
                "event for run %s from %s dropped (no step there)",
                run_id,
                sender,
                peer=sender,
            )
        return placed

    def log_suppressed(self) -> dict[str, int]:
        """Its per-message log lines rate-limited to DEBUG, by ``reason@peer``."""
        return self._log.suppressed()
