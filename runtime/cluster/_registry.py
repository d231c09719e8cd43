"""Names a node accepts from the wire: tasks and actor classes, registered explicitly.

A task or actor class named in a message is looked up here, never imported
from the string: a peer can only run what this process chose to expose.
Names default to ``module:qualname``.

What is registered is also what the node advertises to its peers
(``capabilities``): coordinators place a step only on a member that
registered its task (see ``Cluster.candidates``). Names in ``__main__`` are
not advertised: another process's ``__main__`` is another script.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors import CompositionError
from runtime.workflow import qualified_name
from transport import ActorNotFound

__all__ = ["ACTORS", "TASKS", "Registry", "hint", "is_main"]

TASKS, ACTORS = "tasks", "actors"  # the capability kinds a node advertises


class Registry:
    """Thread-safe tables of the tasks and actor classes a node will run for peers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Callable[[Any], Any]] = {}
        self._actors: dict[str, type[pykka.Actor]] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments) after every registration that adds a name."""
        with self._lock:
            self._listeners.append(listener)

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def capabilities(self) -> dict[str, list[str]]:
        """What this node advertises: ``{"tasks": [...], "actors": [...]}`` (no ``__main__``)."""
        with self._lock:
            return {
                TASKS: sorted(n for n in self._tasks if not is_main(n)),
                ACTORS: sorted(n for n in self._actors if not is_main(n)),
            }

    def has_task(self, name: str) -> bool:
        with self._lock:
            return name in self._tasks

    def has_actor(self, name: str) -> bool:
        with self._lock:
            return name in self._actors

    def register_task(self, fn: Callable[[Any], Any], name: str | None = None) -> str:
        if not callable(fn):
            raise CompositionError(f"register_task(fn) needs a callable, got {fn!r}")
        key = name or qualified_name(fn)
        with self._lock:
            added = key not in self._tasks
            self._tasks[key] = fn
        if added:
            self._changed()
        return key

    def register_actor(self, cls: type[pykka.Actor], name: str | None = None) -> str:
        if not (isinstance(cls, type) and issubclass(cls, pykka.Actor)):
            raise CompositionError(f"register_actor(cls) needs a pykka Actor class, got {cls!r}")
        key = name or qualified_name(cls)
        with self._lock:
            added = key not in self._actors
            self._actors[key] = cls
        if added:
            self._changed()
        return key

    def task(self, name: str, *, node: str) -> Callable[[Any], Any]:
        with self._lock:
            fn = self._tasks.get(name)
        if fn is None:
            raise ActorNotFound(f"task {name!r} is not registered on node {node!r}{hint(name)}")
        return fn

    def actor(self, name: str, *, node: str) -> type[pykka.Actor]:
        with self._lock:
            cls = self._actors.get(name)
        if cls is None:
            raise ActorNotFound(
                f"actor class {name!r} is not registered on node {node!r}{hint(name)}"
            )
        return cls


def is_main(name: str) -> bool:
    """A name of the script that was run: no other process can import it by that name."""
    return name.startswith("__main__:")


def hint(name: str) -> str:
    """How to fix a name a node does not know (appended to the error message)."""
    if is_main(name):
        return (
            ": it is defined in the script that was run (__main__), which a node cannot "
            "import by that name; move it into an importable module and start the nodes "
            "with --app MODULE (or ActorSystem(workflows=[...]))"
        )
    module = name.partition(":")[0]
    return (
        f"; start the node with --app {module} (the module that defines it: its workflows() "
        "or register(system) must name it), or register it there"
    )
