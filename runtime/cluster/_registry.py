"""Names a node accepts from the wire: tasks and actor classes, registered explicitly.

A task or actor class named in a message is looked up here, never imported
from the string: a peer can only run what this process chose to expose.
Names default to ``module:qualname``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors import CompositionError
from runtime.workflow import qualified_name
from transport import ActorNotFound

__all__ = ["Registry"]


class Registry:
    """Thread-safe tables of the tasks and actor classes a node will run for peers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Callable[[Any], Any]] = {}
        self._actors: dict[str, type[pykka.Actor]] = {}

    def register_task(self, fn: Callable[[Any], Any], name: str | None = None) -> str:
        if not callable(fn):
            raise CompositionError(f"register_task(fn) needs a callable, got {fn!r}")
        key = name or qualified_name(fn)
        with self._lock:
            self._tasks[key] = fn
        return key

    def register_actor(self, cls: type[pykka.Actor], name: str | None = None) -> str:
        if not (isinstance(cls, type) and issubclass(cls, pykka.Actor)):
            raise CompositionError(f"register_actor(cls) needs a pykka Actor class, got {cls!r}")
        key = name or qualified_name(cls)
        with self._lock:
            self._actors[key] = cls
        return key

    def task(self, name: str, *, node: str) -> Callable[[Any], Any]:
        with self._lock:
            fn = self._tasks.get(name)
        if fn is None:
            raise ActorNotFound(f"task {name!r} is not registered on node {node!r}{_hint(name)}")
        return fn

    def actor(self, name: str, *, node: str) -> type[pykka.Actor]:
        with self._lock:
            cls = self._actors.get(name)
        if cls is None:
            raise ActorNotFound(
                f"actor class {name!r} is not registered on node {node!r}{_hint(name)}"
            )
        return cls


def _hint(name: str) -> str:
    """How to fix a name the node does not know."""
    if name.startswith("__main__:"):
        return (
            ": it is defined in the script that was run (__main__), which a node cannot "
            "import by that name; move it into an importable module and start the nodes "
            "with --app MODULE (or ActorSystem(workflows=[...]))"
        )
    return "; start the node with --app MODULE that defines it (or register it there)"
