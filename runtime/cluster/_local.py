"""What a Cluster needs from the node it joins: the calls a message from a peer makes into it.

A ``Protocol`` rather than a bundle of callables, so each call has a name and
a signature, and "find implementations" leads to the one object that answers
them (``runtime._links.SystemLinks``, built by ``ActorSystem``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pykka

__all__ = ["LocalNode"]


class LocalNode(Protocol):
    """This node's actors, runs and services, as its Cluster reaches them."""

    def named(self, path: str) -> pykka.ActorRef[Any] | None:
        """The actor spawned here under ``path`` (``spawn(..., name=path)``), if any."""
        ...

    def has_named(self, path: str) -> bool:
        """Whether an actor was spawned here under ``path``: a plain dict read, no lock
        (the I/O thread asks it; ``spawn`` holds the system's lock while user code runs)."""
        ...

    def coordinator(self, run_id: str) -> pykka.ActorRef[Any] | None:
        """The coordinator of run ``run_id``, while the run is live here."""
        ...

    def coordinators(self) -> list[pykka.ActorRef[Any]]:
        """Every live run coordinator (each is told when a node is lost)."""
        ...

    def spawn(self, actor_class: type[pykka.Actor], args: Sequence[Any], name: str) -> None:
        """Start ``actor_class(*args)`` here under ``name`` (a peer's ``spawn_on``)."""
        ...

    def actors_request(self, sender: str, request: dict[str, Any]) -> Any:
        """A ``$actors`` operation from ``sender`` (death watch, children); the answer."""
        ...

    def lock_manager(self) -> pykka.ActorRef[Any]:
        """This node's ``LockManager`` (started on first use), for requests at ``$locks``."""
        ...

    def stats(self) -> dict[str, Any]:
        """A snapshot of this node, in its wire form (``SystemStats.to_wire``)."""
        ...

    def control(self, run_id: str, action: str) -> bool:
        """``cancel``, ``pause`` or ``unpause`` a run coordinated here; False if none."""
        ...

    def submit(self, workflow: str, ctx: bytes, run_id: str | None) -> str:
        """Start the registered ``workflow`` on ``ctx`` (store-codec bytes) for a client;
        the run id. ``LookupError`` (listing the known names) for an unknown workflow."""
        ...

    def run_info(self, run_id: str) -> dict[str, Any]:
        """State, progress and output (or error) of a run coordinated here (``KeyError``)."""
        ...

    def run_list(self) -> list[dict[str, Any]]:
        """Every run this node knows, newest first."""
        ...
