"""NotifyingEvent: a ``threading.Event`` that also runs hooks when it is set.

A step's cancel event is set from another thread (the run coordinator, a
timeout, a remote cancel), and a thread blocked in ``wait()`` sees it. A
coroutine running on an event loop cannot wait on it without a thread or a
poll; a hook added with ``add_hook`` reaches it instead (it schedules the
cancel on the loop). The same push serves ``await run_handle``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["NotifyingEvent"]


def _nothing() -> None:
    return None


class NotifyingEvent(threading.Event):
    """An Event whose ``set()`` also calls each hook once, on the setter's thread.

    Hooks must be quick and must not raise (they run on whichever thread sets
    the event, e.g. a run coordinator): hand the work to another thread or
    loop, as ``loop.call_soon_threadsafe`` does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hooks_lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def set(self) -> None:
        with self._hooks_lock:
            super().set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def add_hook(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` when the event is set (now, if it already is); returns a remover."""
        with self._hooks_lock:
            if not self.is_set():
                self._hooks.append(hook)
                return lambda: self._remove(hook)
        hook()
        return _nothing

    def _remove(self, hook: Callable[[], None]) -> None:
        with self._hooks_lock:
            if hook in self._hooks:
                self._hooks.remove(hook)
