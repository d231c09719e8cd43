"""The node state machine: an explicit transition table; anything else raises.

::

    Pending --> Running --> Completed
       |           |------> Failed --(retry)--> Running
       |           '------> Canceled
       '--------------------> Canceled          (canceled before it started)
                Failed -----> Canceled          (canceled while backing off)

Every transition is stamped with the clock and reported as a ``StateChanged``
event through the ``emit`` callback, in the thread that made the change.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from actors._clock import Clock
from actors._errors import IllegalTransition

__all__ = ["TRANSITIONS", "NodeState", "StateChanged", "StateMachine"]


class NodeState(enum.Enum):
    """Lifecycle of one workflow node (and of a whole run)."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_final(self) -> bool:
        """Completed and Canceled never change again; Failed may be retried."""
        return self in (NodeState.COMPLETED, NodeState.CANCELED)

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[NodeState, frozenset[NodeState]] = {
    NodeState.PENDING: frozenset({NodeState.RUNNING, NodeState.CANCELED}),
    NodeState.RUNNING: frozenset({NodeState.COMPLETED, NodeState.FAILED, NodeState.CANCELED}),
    NodeState.FAILED: frozenset({NodeState.RUNNING, NodeState.CANCELED}),
    NodeState.COMPLETED: frozenset(),
    NodeState.CANCELED: frozenset(),
}


@dataclass(frozen=True)
class StateChanged:
    """A node moved from ``old`` to ``new`` at wall-clock ``timestamp``."""

    step: str
    old: NodeState
    new: NodeState
    timestamp: float
    run_id: str = ""


class StateMachine:
    """Thread-safe holder of one node's state, attempts and last error.

    ``attempts`` counts entries into Running (1 on the first run, 2 after one
    retry); ``last_error`` and ``last_attempt`` mirror the seed design's
    ``Failed { error, attempts, last_attempt }``.
    """

    def __init__(
        self,
        step: str,
        *,
        clock: Clock,
        emit: Callable[[StateChanged], None],
        run_id: str = "",
    ) -> None:
        self.step = step
        self.run_id = run_id
        self._clock = clock
        self._emit = emit
        self._lock = threading.Lock()
        self._state = NodeState.PENDING
        self.attempts = 0
        self.last_error: BaseException | None = None
        self.last_attempt: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    @property
    def state(self) -> NodeState:
        return self._state

    def transition(self, new: NodeState, *, error: BaseException | None = None) -> StateChanged:
        """Move to ``new``; raises IllegalTransition if the table forbids it."""
        with self._lock:
            old = self._state
            if new not in TRANSITIONS[old]:
                raise IllegalTransition(f"step {self.step!r}: illegal transition {old} -> {new}")
            now = self._clock.wall()
            self._state = new
            if new is NodeState.RUNNING:
                self.attempts += 1
                self.last_attempt = now
                if self.started_at is None:
                    self.started_at = now
            elif new is NodeState.FAILED:
                self.last_error = error
                self.finished_at = now
            else:
                self.finished_at = now
            event = StateChanged(self.step, old, new, now, self.run_id)
        self._emit(event)
        return event
