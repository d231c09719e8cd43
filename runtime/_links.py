"""The calls a system's Cluster and Runs make back into it, answered by one object.

Each is built before a part it calls (the cluster needs the runs to find
coordinators, a starting run needs the cluster), so instead of callables they
get ``SystemLinks`` and ask it when a message or a run arrives. Its methods
are the whole list of those calls: ``LocalNode`` for the cluster,
``RunLinks`` for the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from runtime.cluster import Cluster, LocalNode, LockClient

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["RunLinks", "SystemLinks"]


class RunLinks(Protocol):
    """What a starting run gets from its system (asked per run: the cluster comes later)."""

    def cluster(self) -> Cluster | None:
        """This system's cluster membership, None when it is not a member."""
        ...

    def lock_client(self) -> LockClient:
        """A client of the lock manager on ``locks_on`` (``NodeDown`` if unreachable)."""
        ...


class SystemLinks(LocalNode, RunLinks):
    """``system`` as its Cluster (``LocalNode``) and its Runs (``RunLinks``) reach it."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    # -- LocalNode: what peers ask of this node ----------------------------------------

    def named(self, path: str) -> pykka.ActorRef[Any] | None:
        return self._system._named_ref(path)

    def has_named(self, path: str) -> bool:
        return self._system._has_named(path)

    def coordinator(self, run_id: str) -> pykka.ActorRef[Any] | None:
        return self._system._runs.coordinator(run_id)

    def coordinators(self) -> list[pykka.ActorRef[Any]]:
        return self._system._runs.live_coordinators()

    def spawn(self, actor_class: type[pykka.Actor], args: Sequence[Any], name: str) -> None:
        self._system.spawn(actor_class, *args, name=name)

    def actors_request(self, sender: str, request: dict[str, Any]) -> Any:
        return self._system._host.request(sender, request)

    def lock_manager(self) -> pykka.ActorRef[Any]:
        return self._system._local_lock_manager()

    def stats(self) -> dict[str, Any]:
        return self._system.stats().to_wire()

    def control(self, run_id: str, action: str) -> bool:
        return self._system.control(run_id, action)

    def submit(self, workflow: str, ctx: bytes, run_id: str | None) -> str:
        return self._system._submissions.submit(workflow, ctx, run_id)

    def run_info(self, run_id: str) -> dict[str, Any]:
        return self._system._submissions.run_info(run_id)

    def run_list(self) -> list[dict[str, Any]]:
        return self._system._submissions.run_list()

    # -- RunLinks: what a starting run needs -------------------------------------------

    def cluster(self) -> Cluster | None:
        return self._system.cluster

    def lock_client(self) -> LockClient:
        return self._system._lock_client()
