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
_ids = itertools.count()  # handles of unkeyed callbacks, unique across scopes (they move)


class CancelScope:
    """A node of the run's scope tree; the root scope is the whole run."""

    def __init__(self, parent: CancelScope | None = None) -> None:
        self.parent = parent
        self._canceled = False  # true from the moment cancel() starts; never false again
        self._merged_into: CancelScope | None = None  # set by dissolve()
        self._children: list[CancelScope] = []
        # Callbacks in registration order; a keyed one is registered at most once
        # (a step re-run by an enclosing retry registers its cancel once per scope).
        self._callbacks: dict[Hashable, _OnCancel] = {}

    @property
    def canceled(self) -> bool:
        """Canceled itself, or (once dissolved) the scope that took over its contents is."""
        if self._canceled:
            return True
        return self._merged_into is not None and self._merged_into.canceled

    def child(self) -> CancelScope:
        scope = CancelScope(self)
        self._children.append(scope)
        return scope

    def on_cancel(self, callback: _OnCancel, key: Hashable | None = None) -> Callable[[], None]:
        """Run ``callback(reason)`` when this scope is canceled; returns its removal."""
        handle: Hashable = ("key", key) if key is not None else ("id", next(_ids))
        self._callbacks.setdefault(handle, callback)

        def remove() -> None:  # wherever dissolve() moved it
            scope: CancelScope | None = self
            while scope is not None:
                if scope._callbacks.pop(handle, None) is not None:
                    return
                scope = scope._merged_into

        return remove

    def cancel(self, reason: str) -> None:
        """Run every callback, then cancel every child scope; a second call does nothing."""
        if self._canceled:
            return
        self._canceled = True
        callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            callback(reason)
        for child in list(self._children):
            child.cancel(reason)
        self.close()

    def dissolve(self) -> None:
        """The part ended: hand what this scope still holds to its parent, and detach.

        A part that failed may leave steps awaiting a rerun by an enclosing retry;
        their cancel callbacks move to the parent (a step's keyed callback merges
        with the parent's own for that step), so a cancel still reaches them while
        the scope tree does not grow with every retried part.
        """
        parent = self.parent
        if parent is None or self._canceled:
            self.close()
            return
        for handle, callback in self._callbacks.items():
            parent._callbacks.setdefault(handle, callback)
        for child in self._children:
            child.parent = parent
            parent._children.append(child)
        self._callbacks, self._children = {}, []
        self._merged_into = parent
        self.close()

    def close(self) -> None:
        """Detach from the parent (a canceled or dissolved scope has nothing left to give)."""
        if self.parent is not None:
            with contextlib.suppress(ValueError):
                self.parent._children.remove(self)
            self.parent = None

    @property
    def children(self) -> int:
        """How many child scopes are attached (for tests of clean-up)."""
        return len(self._children)
