"""The app the cluster rows' worker processes load (``actorflow node --app bench._cluster_app``).

It registers the no-op step of ``bench._steps`` (the figures are pure runtime
overhead) and ``Echo``, the actor the round-trip baseline asks.
"""

from __future__ import annotations

from typing import Any

import pykka

from bench._steps import noop
from runtime import ActorSystem, Workflow, task

__all__ = ["Echo", "register", "workflows"]


class Echo(pykka.ThreadingActor):
    """Answers every ask with the message itself."""

    def on_receive(self, message: Any) -> Any:
        return message


def workflows() -> list[Workflow[Any, Any]]:
    return [task(noop).named("bench-cluster-noop")]


def register(system: ActorSystem) -> None:
    system.register_actor(Echo)
