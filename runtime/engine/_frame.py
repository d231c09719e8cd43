"""Where a part of a workflow runs: its position, cancel scope, and inherited settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors import WorkflowObserver
from runtime.engine._scope import CancelScope
from runtime.workflow import CheckpointStrategy, PlacementStrategy

__all__ = ["Frame", "Observers"]

Observers = tuple[WorkflowObserver, ...]


@dataclass(frozen=True, eq=False)
class Frame:
    """Immutable; a wrapper part passes a changed copy to what it wraps."""

    path: tuple[Any, ...]
    scope: CancelScope
    observers: Observers = ()  # from enclosing .monitored()
    strategy: CheckpointStrategy | None = None  # innermost .checkpoint(); None: the run's
    locks: tuple[tuple[str, int], ...] = ()  # (name, fencing token) of the locks held here
    placement: PlacementStrategy | None = None  # innermost .adaptive(); None: default
    # One per enclosing composite .retry(): would it run its part again after this error?
    # A step's Failed event is final only if neither its own policy nor any of these retries.
    outer_retries: tuple[Callable[[BaseException], bool], ...] = ()

    def child(self, *suffix: Any) -> Frame:
        # dataclasses.replace at a third of the cost: once per step of a chain
        return Frame(**{**self.__dict__, "path": (*self.path, *suffix)})

    def within(self, scope: CancelScope) -> Frame:
        return dataclasses.replace(self, scope=scope)
