"""How many step attempts wait under ``max_running_steps``, over every run of one system.

Each run's ``AttemptTable`` is added when its coordinator starts; ``count``
reads them from any thread (a length read, so a snapshot, not a lock-step
figure). Tables are held weakly: a finished run's table goes with its coordinator.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

__all__ = ["WaitingAttempts"]


class _Queue(Protocol):
    @property
    def waiting(self) -> int: ...


class WaitingAttempts:
    """The attempts held back by the bound, summed over the live runs of one system."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: weakref.WeakSet[_Queue] = weakref.WeakSet()

    def add(self, table: _Queue) -> None:
        with self._lock:
            self._tables.add(table)

    def count(self) -> int:
        with self._lock:
            tables = list(self._tables)
        return sum(table.waiting for table in tables)
