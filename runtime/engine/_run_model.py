"""The run coordinator's vocabulary: outcomes, scopes, frames, node records, messages."""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from actors import (
    Clock,
    EventBus,
    NodePool,
    NodeState,
    StepResult,
    TimerHandle,
    WorkflowObserver,
)
from actors import events as ev
from runtime.cluster import LockClient
from runtime.engine._handle import RunHandle, StepLog
from runtime.engine._load import LoadBook
from runtime.store import RunRecorder
from runtime.workflow import (
    CheckpointStrategy,
    PlacementStrategy,
    RetryPolicy,
    Task,
    Workflow,
    qualified_name,
)
from transport import WorkflowError

if TYPE_CHECKING:
    from runtime.cluster._cluster import Cluster

__all__ = ["CoordinatorBase"]


@dataclass(frozen=True)
class _Ok:
    output: Any
    ctx: Any


@dataclass(frozen=True)
class _Err:
    error: BaseException


_Outcome = _Ok | _Err
_Cont = Callable[[_Outcome], None]
_Observers = tuple[WorkflowObserver, ...]


@dataclass(eq=False)
class _Scope:
    """What one sub-workflow has in flight; canceling it cancels its children."""

    parent: _Scope | None = None
    canceled: bool = False
    children: list[_Scope] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)
    timers: list[TimerHandle] = field(default_factory=list)
    on_cancel: list[Callable[[], None]] = field(default_factory=list)  # e.g. release a lock

    def child(self) -> _Scope:
        scope = _Scope(self)
        self.children.append(scope)
        return scope


@dataclass(frozen=True, eq=False)
class _Frame:
    """Where a sub-workflow runs: its position, its cancel scope, its extra observers."""

    path: tuple[Any, ...]
    scope: _Scope
    observers: _Observers
    strategy: CheckpointStrategy | None  # from the innermost .checkpoint(); None: the run's
    locks: tuple[tuple[str, int], ...] = ()  # (name, fencing token) of the locks held here
    placement: PlacementStrategy | None = None  # from the innermost .adaptive(); None: default
    # One per enclosing composite .retry(): would it run its part again after this error?
    # A step's Failed event is final only if neither its own policy nor any of these retries.
    outer_retries: tuple[Callable[[BaseException], bool], ...] = ()

    def child(self, *suffix: Any) -> _Frame:
        return dataclasses.replace(self, path=(*self.path, *suffix))


@dataclass(eq=False)
class _Node:
    """A node actor hosting one step key: local (``ref``) or on node ``host``."""

    ref: pykka.ActorRef[Any] | None
    incarnation: int
    cancel_event: threading.Event
    state: NodeState = NodeState.PENDING
    starts: int = 0  # Start messages sent; the node numbers its attempts the same way
    host: str = ""


@dataclass(eq=False)
class _Waiting:
    """A dispatched attempt the coordinator expects a report for."""

    incarnation: int
    node_attempt: int  # the node's own attempt number, to match its report
    attempt: int  # the step's attempt number across node incarnations
    scope: _Scope
    cont: Callable[[StepResult], None]
    wf: Task  # what and on which context: enough to re-place it if its node is lost
    ctx: Any
    tokens: dict[str, int]
    placement: PlacementStrategy | None


@dataclass(frozen=True)
class _NodeReport:
    incarnation: int
    result: StepResult


@dataclass(frozen=True)
class _Wake:
    token: int


@dataclass(frozen=True)
class _CancelRun:
    reason: str


@dataclass(frozen=True)
class _Pause:
    paused: bool


def _has_wire_name(wf: Task) -> bool:
    try:
        qualified_name(wf.fn)
    except WorkflowError:
        return False
    return True


def _of_run(run_id: str) -> Callable[[ev.Event], bool]:
    return lambda event: getattr(event, "run_id", None) == run_id


def _of_steps(
    run_id: str, monitors: dict[str, _Observers], observer: WorkflowObserver
) -> Callable[[ev.Event], bool]:
    """Run-level events, and step events of the steps ``observer`` monitors."""

    def accepts(event: ev.Event) -> bool:
        if getattr(event, "run_id", None) != run_id:
            return False
        step = getattr(event, "step", None) or getattr(event, "node_id", None)
        return step is None or any(o is observer for o in monitors.get(step, ()))

    return accepts


class CoordinatorBase(pykka.ThreadingActor):
    """What the parts of the run coordinator share: its state, and each other's methods.

    ``RunCoordinator`` (``_run``) combines ``Combinators`` (``_combinators``: the
    interpreter of composition nodes), ``StepDriver`` (``_steps``: tasks, node
    actors, checkpoints of steps) and ``RemotePlacement`` (``_placement``: where
    a step runs, remote steps and failover). Everything runs in the one
    coordinator thread.
    """

    # One interpreter method per kind of workflow node (filled in by ``_run``).
    _HANDLERS: ClassVar[dict[type, Callable[..., None]]] = {}

    run_id: str
    _workflow: Workflow[Any, Any]
    _ctx: Any
    _handle: RunHandle[Any]
    _bus: EventBus
    _clock: Clock
    _on_finished: Callable[[str], None]
    _node_name: str
    _root: _Scope
    _finished: bool
    _keys: dict[tuple[Any, ...], str]
    _key_counts: dict[str, int]
    _nodes: dict[str, _Node]
    _waiting: dict[str, _Waiting]
    _wakeups: dict[int, Callable[[], None]]
    _orphans: dict[int, Callable[[], None]]  # answers owed to a stopped coordinator
    _tokens: Iterator[int]
    _incarnations: Iterator[int]
    _attempts: dict[str, int]
    _rerun_pending: set[str]
    _steps: StepLog
    _monitors: dict[str, _Observers]
    _watched: list[WorkflowObserver]
    _unsubscribes: list[Callable[[], None]]
    _started_at: float
    _recorder: RunRecorder | None
    _replay: dict[str, tuple[Any, Any]]
    _lease: float
    _pool: NodePool
    _cluster: Cluster | None
    _locks: LockClient | None
    _paused: bool
    _book: LoadBook
    _parked: list[Callable[[], None]]
    _max_running: int | None
    _queued: collections.deque[Callable[[], None]]
    _hosts_used: set[str]

    if TYPE_CHECKING:

        def _exec(
            self,
            wf: Workflow[Any, Any],
            ctx: Any,
            frame: _Frame,
            cont: _Cont,
        ) -> None: ...

        def _exec_task(
            self,
            wf: Task,
            ctx: Any,
            frame: _Frame,
            cont: _Cont,
            policy: RetryPolicy | None,
        ) -> None: ...

        def _emit(self, event: ev.Event) -> None: ...

        def _key(self, path: tuple[Any, ...], name: str) -> str: ...

        def _report(self, key: str, **changes: Any) -> None: ...

        def _schedule(
            self, scope: _Scope, delay: float, callback: Callable[[], None]
        ) -> Callable[[], None]: ...

        def _watch(self, observers: _Observers) -> None: ...

        def _cancel_scope(self, scope: _Scope, reason: str) -> None: ...

        def _finish(self, outcome: _Outcome) -> None: ...

        def _abandon(self, key: str, node: _Node, reason: str) -> None: ...

        def _dispatch(
            self,
            key: str,
            wf: Task,
            ctx: Any,
            scope: _Scope,
            on_result: Callable[[StepResult], None],
            exclude: frozenset[str] = frozenset(),
            tokens: dict[str, int] | None = None,
            placement: PlacementStrategy | None = None,
        ) -> None: ...

        def _on_report(self, report: _NodeReport) -> None: ...

        def _place(
            self,
            key: str,
            wf: Task,
            exclude: frozenset[str],
            placement: PlacementStrategy | None,
        ) -> str: ...

        def _remote(self, key: str, host: str) -> _Node: ...

        def _send_remote(
            self,
            key: str,
            node: _Node,
            wf: Task,
            ctx: Any,
            attempt: int,
            tokens: dict[str, int],
            exclude: frozenset[str],
        ) -> bool: ...

        def _replace(self, key: str, host: str, exclude: frozenset[str]) -> None: ...

        def _retire(self, key: str) -> None: ...

        def _spawn_node(self, key: str, wf: Task) -> _Node: ...

        def _fail_persistence(self, exc: Exception) -> None: ...

        def _later(self, handler: Callable[[Any], None]) -> Callable[[Any], None]: ...

        def _record_skipped(self, wf: Workflow[Any, Any], path: tuple[Any, ...]) -> None: ...

        def _replay_step(self, key: str, cont: _Cont) -> None: ...

        def _record_completed(
            self, key: str, result: StepResult, strategy: CheckpointStrategy | None
        ) -> bool: ...

        def _record_failed(self, key: str, result: StepResult, error: BaseException) -> bool: ...
