"""Cancel scopes: what one part of a run has in flight, canceled as one.

Modelled on trio's cancel scopes: a scope holds callbacks, and canceling it
runs them (stop a step, cancel a timer, give a lock back), then cancels its
child scopes. Used only from the coordinator's thread.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Hashable

__all__ = ["CancelScope"]

_OnCancel = Callable[[str], None]


class CancelScope:
    """A node of the run's scope tree; the root scope is the whole run."""

    def __init__(self, parent: CancelScope | None = None) -> None:
        self.parent = parent
        self.canceled = False  # true from the moment cancel() starts; never false again
        self._children: list[CancelScope] = []
        # Callbacks in registration order; a keyed one is registered at most once
        # (a step re-run by an enclosing retry registers its cancel once per scope).
        self._callbacks: dict[Hashable, _OnCancel] = {}
        self._ids = itertools.count()

    def child(self) -> CancelScope:
        scope = CancelScope(self)
        self._children.append(scope)
        return scope

    def on_cancel(self, callback: _OnCancel, key: Hashable | None = None) -> Callable[[], None]:
        """Run ``callback(reason)`` when this scope is canceled; returns its removal."""
        handle: Hashable = ("key", key) if key is not None else next(self._ids)
        self._callbacks.setdefault(handle, callback)

        def remove() -> None:
            self._callbacks.pop(handle, None)

        return remove

    def cancel(self, reason: str) -> None:
        """Run every callback, then cancel every child scope; a second call does nothing."""
        if self.canceled:
            return
        self.canceled = True
        callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            callback(reason)
        for child in list(self._children):
            child.cancel(reason)
        self.close()

    def close(self) -> None:
        """Detach a part that succeeded (nothing of it can be in flight or await a rerun)
        from its parent, so a long run's scope tree does not grow."""
        if self.parent is not None:
            with contextlib.suppress(ValueError):
                self.parent._children.remove(self)
            self.parent = None

    @property
    def children(self) -> int:
        """How many child scopes are attached (for tests of clean-up)."""
        return len(self._children)
