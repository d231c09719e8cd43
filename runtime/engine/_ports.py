"""What the engine needs from outside a run, as protocols: the cluster, locks, the run owner.

The engine never imports the cluster: the system hands each coordinator an
object with these methods (``runtime.cluster.Cluster``, ``LockClient``), and
the step messages it receives come from ``runtime.cluster``'s step protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from actors import Clock, EventBus, NodePool
from runtime.cluster import RunStep
from runtime.engine._waiting import WaitingAttempts

__all__ = ["Engine", "LockService", "RunOwner", "StepCluster"]


class StepCluster(Protocol):
    """Where remote steps go: placement over live nodes, and the step messages."""

    def candidates(self, task: str, exclude: frozenset[str] = ...) -> Sequence[str]:
        """Live nodes that registered ``task`` (peers first, else this node); raises a
        ``PermanentError`` naming the task and the fix when there is none."""
        ...

    def place(self, task: str, pinned: str | None, exclude: frozenset[str] = ...) -> str:
        """``pinned`` (refused if that live node lacks ``task``), else the next candidate."""
        ...

    def send_step(self, node: str, request: RunStep) -> None:
        """Ask ``node`` to run a step; raises ``NodeDown`` (or another error) if not sent."""
        ...

    def cancel_step(self, node: str, run_id: str, step: str) -> None: ...

    def end_run(self, node: str, run_id: str) -> None: ...


class LockService(Protocol):
    """The lock manager, local or remote: answers come back through ``callback``."""

    def request(self, op: str, fields: dict[str, Any], callback: Callable[[Any], None]) -> None: ...


class RunOwner(Protocol):
    """Who keeps a system's runs: told (from the event thread) when one has ended."""

    def run_finished(self, run_id: str) -> None: ...


@dataclass(frozen=True)
class Engine:
    """What a system lends to every run it coordinates."""

    node_name: str
    bus: EventBus
    clock: Clock
    pool: NodePool
    owner: RunOwner
    cluster: StepCluster | None = None
    locks: LockService | None = None
    lease: float = 10.0  # seconds a run's ownership lease lasts; renewed every third of it
    max_running: int | None = None  # attempts in flight per run; None: no bound
    waiting: WaitingAttempts | None = None  # where the run's queue is counted (metrics)
