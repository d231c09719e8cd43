"""The calls a system's Cluster makes back into it, answered by one object.

Instead of callables the cluster gets ``SystemLinks`` and asks it when a
message arrives; its methods are the whole list of those calls (``LocalNode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pykka

from runtime.cluster import LocalNode

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["SystemLinks"]


class SystemLinks(LocalNode):
    """``system`` as its Cluster (``LocalNode``) reaches it."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    # -- LocalNode: what peers ask of this node ----------------------------------------

    def named(self, path: str) -> pykka.ActorRef[Any] | None:
        return self._system._named_ref(path)

    def coordinator(self, run_id: str) -> pykka.ActorRef[Any] | None:
        return self._system._runs.coordinator(run_id)

    def coordinators(self) -> list[pykka.ActorRef[Any]]:
        return self._system._runs.live_coordinators()

    def spawn(self, actor_class: type[pykka.Actor], args: Sequence[Any], name: str) -> None:
        self._system.spawn(actor_class, *args, name=name)

    def lock_manager(self) -> pykka.ActorRef[Any]:
        return self._system._local_lock_manager()

    def stats(self) -> dict[str, Any]:
        return self._system.stats().to_wire()

    def control(self, run_id: str, action: str) -> bool:
        return self._system.control(run_id, action)
