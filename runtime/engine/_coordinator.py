"""The run coordinator: one actor that walks a workflow and drives its node actors.

All composition logic (conditions, mappers, merges, retry decisions, timers)
runs in the coordinator's own thread, one message at a time; task functions run
in node actors. The coordinator never blocks on a node: nodes report with a
tell, backoffs and step timeouts are clock timers that come back as messages.

Execution is continuation-passing: ``_exec(workflow, ctx, ...)`` starts a
sub-workflow and later calls its continuation with ``_Ok(output, ctx)`` or
``_Err(error)``. A ``_Scope`` groups what a sub-workflow has in flight, so a
failed parallel branch or a cancel can stop its siblings.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from actors import (
    Canceled,
    CancelNode,
    Clock,
    EventBus,
    NodePool,
    NodeState,
    WorkflowObserver,
)
from actors import events as ev
from runtime.cluster import LockClient, NodeLost, StepOutcome
from runtime.engine._handle import RunHandle, StepLog
from runtime.engine._load import LoadBook
from runtime.store import Replay, RunRecorder
from runtime.workflow import (
    Adaptive,
    Checkpointed,
    Deadline,
    Dynamic,
    Locked,
    Monitored,
    Named,
    Nested,
    Parallel,
    Predictive,
    Retry,
    Task,
    Then,
    When,
    Workflow,
    monitors,
)

if TYPE_CHECKING:
    from runtime.cluster._cluster import Cluster
from runtime.engine._combinators import Combinators
from runtime.engine._placement import RemotePlacement
from runtime.engine._run_model import (
    _CancelRun,
    _Err,
    _Frame,
    _Node,
    _NodeReport,
    _Observers,
    _of_run,
    _of_steps,
    _Ok,
    _Outcome,
    _Pause,
    _Scope,
    _Waiting,
    _Wake,
)
from runtime.engine._steps import StepDriver

__all__ = ["RunCoordinator", "cancel_run", "pause_run"]

log = logging.getLogger(__name__)


class RunCoordinator(Combinators, StepDriver, RemotePlacement):
    """Drives one run; created by ``ActorSystem.run``. Only tells are sent to it."""

    def __init__(
        self,
        run_id: str,
        workflow: Workflow[Any, Any],
        ctx: Any,
        *,
        handle: RunHandle[Any],
        steps: StepLog,
        bus: EventBus,
        clock: Clock,
        on_finished: Callable[[str], None],
        node_name: str = "local",
        observers: tuple[WorkflowObserver, ...] = (),
        recorder: RunRecorder | None = None,
        replay: Replay | None = None,
        lease: float = 10.0,
        pool: NodePool | None = None,
        cluster: Cluster | None = None,
        locks: LockClient | None = None,
        max_running: int | None = None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self._workflow = workflow
        self._ctx = ctx
        self._handle = handle
        self._bus = bus
        self._clock = clock
        self._on_finished = on_finished
        self._node_name = node_name
        self._root = _Scope()
        self._finished = False
        self._keys: dict[tuple[Any, ...], str] = {}
        self._key_counts: dict[str, int] = {}
        self._nodes: dict[str, _Node] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._wakeups: dict[int, Callable[[], None]] = {}
        self._orphans: dict[int, Callable[[], None]] = {}  # see Combinators._later
        self._tokens = itertools.count(1)
        self._incarnations = itertools.count(1)
        self._attempts: dict[str, int] = {}
        # Failed, not final: waiting for a rerun (its own retry timer, or an enclosing
        # .retry()); a cancel before that rerun still ends its story with Canceled.
        self._rerun_pending: set[str] = set()
        self._steps = steps
        self._monitors: dict[str, _Observers] = {}
        self._watched: list[WorkflowObserver] = []
        self._unsubscribes = [bus.subscribe(o, _of_run(run_id)) for o in observers]
        self._watch(tuple(monitors(workflow)))  # before the run's first event
        self._started_at = 0.0
        self._recorder = recorder
        self._replay = dict(replay.completed) if replay is not None else {}
        self._lease = lease
        self._pool = pool if pool is not None else NodePool(clock, max_idle=0)
        self._cluster = cluster
        self._locks = locks
        self._paused = False
        self._book = LoadBook()
        self._parked: list[Callable[[], None]] = []  # attempts held back while paused
        self._max_running = max_running
        self._queued: collections.deque[Callable[[], None]] = collections.deque()
        self._hosts_used: set[str] = set()

    # -- pykka hooks ---------------------------------------------------------------

    def on_start(self) -> None:
        self._started_at = self._clock.now()
        self._handle._set_state(NodeState.RUNNING)
        self._emit(ev.Started(self.run_id, None, 1, self._node_name, self._clock.wall()))
        if self._recorder is not None:
            self._schedule(self._root, self._lease / 3, self._renew_lease)
        self._guarded(
            lambda: self._exec(
                self._workflow, self._ctx, _Frame((), self._root, (), None), self._finish
            )
        )
        if self._queued:
            self._guarded(self._admit_queued)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _NodeReport):
            self._guarded(lambda: self._on_report(message))
        elif isinstance(message, _Wake):
            callback = self._wakeups.pop(message.token, None)
            if callback is not None:
                self._guarded(callback)
        elif isinstance(message, StepOutcome):
            self._guarded(lambda: self._on_remote_report(message))
        elif isinstance(message, NodeLost):
            self._guarded(lambda: self._on_node_lost(message))
        elif isinstance(message, _CancelRun):
            self._guarded(lambda: self._cancel_run(message.reason))
        elif isinstance(message, _Pause):
            self._guarded(lambda: self._set_paused(message.paused))
        else:
            log.warning("run %s: coordinator ignored unknown message %r", self.run_id, message)
        # Every attempt ends while handling some message: admitting the queued ones
        # here, in one place, covers results, timeouts, cancels and lost nodes alike.
        if self._queued:
            self._guarded(self._admit_queued)
        return None

    def on_stop(self) -> None:
        for orphaned in list(self._orphans.values()):  # e.g. a lock granted as the run ended
            orphaned()
        self._orphans.clear()
        for node in self._nodes.values():
            if node.ref is None:
                continue
            if node.state is NodeState.RUNNING:  # its task has not returned: never reuse
                node.cancel_event.set()
                node.ref.stop(block=False)
            else:
                self._pool.release(node.ref)
        self._nodes.clear()
        if self._cluster is not None:
            for host in self._hosts_used:
                self._cluster.end_run(host, self.run_id)

    def _guarded(self, action: Callable[[], None]) -> None:
        """A bug in composition code fails the run; it never leaves a caller waiting."""
        try:
            action()
        except Exception as exc:
            log.exception("run %s: coordinator error", self.run_id)
            self._finish(_Err(exc))

    # -- helpers -------------------------------------------------------------------

    def _emit(self, event: ev.Event) -> None:
        self._bus.emit(event)

    def _key(self, path: tuple[Any, ...], name: str) -> str:
        """A stable, readable key per position: the step name, ``#n`` on repeats."""
        key = self._keys.get(path)
        if key is None:
            count = self._key_counts.get(name, 0) + 1
            self._key_counts[name] = count
            key = name if count == 1 else f"{name}#{count}"
            self._keys[path] = key
        return key

    def _report(self, key: str, **changes: Any) -> None:
        self._steps.update(key, **changes)

    def _schedule(
        self, scope: _Scope, delay: float, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Run ``callback`` on this actor after ``delay`` s (unless ``scope`` is canceled).

        Returns a function that cancels it (timer and callback, nothing left behind).
        """
        token = next(self._tokens)
        me = self.actor_ref
        timer = self._clock.call_later(delay, lambda: me.tell(_Wake(token)))
        scope.timers.append(timer)

        def forget() -> None:  # fired or canceled: the scope need not keep it (renewals add up)
            with contextlib.suppress(ValueError):
                scope.timers.remove(timer)

        def fired() -> None:
            forget()
            callback()

        def cancel() -> None:
            timer.cancel()
            self._wakeups.pop(token, None)
            forget()

        self._wakeups[token] = fired
        return cancel

    def _drop_timers(self, scope: _Scope) -> None:
        """The run is over: no timer of it may fire later (into a stopped coordinator)."""
        for timer in scope.timers:
            timer.cancel()
        scope.timers.clear()
        for child in scope.children:
            self._drop_timers(child)

    def _watch(self, observers: _Observers) -> None:
        """Subscribe ``.monitored`` observers to this run's events of their steps."""
        for observer in observers:
            if any(o is observer for o in self._watched):
                continue
            self._watched.append(observer)
            self._unsubscribes.append(
                self._bus.subscribe(observer, _of_steps(self.run_id, self._monitors, observer))
            )

    # -- cancel and finish ---------------------------------------------------------

    def _abandon(self, key: str, node: _Node, reason: str) -> None:
        """Stop waiting for a node whose task may still run: never reuse its actor."""
        node.cancel_event.set()
        if node.ref is not None:
            node.ref.stop(block=False)
        elif self._cluster is not None:
            self._cluster.cancel_step(node.host, self.run_id, key)
        log.info("run %s: step %s abandoned (%s)", self.run_id, key, reason)

    def _cancel_scope(self, scope: _Scope, reason: str) -> None:
        if scope.canceled:
            return
        scope.canceled = True
        for timer in scope.timers:
            timer.cancel()
        for cleanup in scope.on_cancel:
            cleanup()
        for key in scope.steps:
            was_waiting = self._waiting.pop(key, None) is not None
            if not (was_waiting or key in self._rerun_pending):
                continue  # finished (or failed for good): its state stays
            self._rerun_pending.discard(key)
            node = self._nodes.get(key)
            if node is not None:
                node.cancel_event.set()
                if node.ref is not None:
                    node.ref.tell(CancelNode(reason))
                elif self._cluster is not None:
                    self._cluster.cancel_step(node.host, self.run_id, key)
            self._report(key, state=NodeState.CANCELED, finished_at=self._clock.wall())
            self._emit(ev.Canceled(self.run_id, key, reason, self._clock.wall()))
        for child in scope.children:
            self._cancel_scope(child, reason)

    def _set_paused(self, paused: bool) -> None:
        """Paused: no new attempt starts (running ones finish); unpaused: the parked ones start."""
        if self._finished or paused == self._paused:
            return
        self._paused = paused
        self._handle._set_paused(paused)
        log.info("run %s %s", self.run_id, "paused" if paused else "unpaused")
        if not paused:
            parked, self._parked = self._parked, []
            for start in parked:
                start()

    def _cancel_run(self, reason: str) -> None:
        if self._finished:
            return
        self._cancel_scope(self._root, reason)
        self._finish(_Err(Canceled(f"run {self.run_id} canceled: {reason}")))

    def _finish(self, outcome: _Outcome) -> None:
        if self._finished:
            return
        self._finished = True
        self._drop_timers(self._root)
        now = self._clock.wall()
        error: BaseException | None
        if isinstance(outcome, _Ok):
            state, output, error = NodeState.COMPLETED, outcome.output, None
            self._emit(
                ev.Completed(self.run_id, None, 1, self._clock.now() - self._started_at, now)
            )
        elif isinstance(outcome.error, Canceled):
            state, output, error = NodeState.CANCELED, None, outcome.error
            self._emit(ev.Canceled(self.run_id, None, str(outcome.error), now))
        else:
            state, output, error = NodeState.FAILED, None, outcome.error
            self._cancel_scope(self._root, "run failed")
            self._emit(ev.Failed(self.run_id, None, outcome.error, 1, True, now))
        if self._recorder is not None:
            try:
                self._recorder.finish(state, output, error)
                self._recorder.release()
            except Exception as exc:
                log.error("run %s: final checkpoint failed: %s", self.run_id, exc)
                if error is None:
                    state, output, error = NodeState.FAILED, None, exc
        handle, unsubscribes, on_finished, run_id = (
            self._handle,
            self._unsubscribes,
            self._on_finished,
            self.run_id,
        )

        def resolve() -> None:
            for unsubscribe in unsubscribes:
                unsubscribe()
            handle._resolve(state, output, error)
            on_finished(run_id)

        self._bus.call_soon(resolve)
        self.actor_ref.stop(block=False)


def cancel_run(ref: pykka.ActorRef[Any], reason: str) -> None:
    """Ask the coordinator behind ``ref`` to cancel its run (thread-safe, non-blocking)."""
    with contextlib.suppress(pykka.ActorDeadError):  # the run already ended
        ref.tell(_CancelRun(reason))


def pause_run(ref: pykka.ActorRef[Any], paused: bool) -> None:
    """Ask the coordinator behind ``ref`` to pause or unpause its run (non-blocking)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(_Pause(paused))


RunCoordinator._HANDLERS = {
    Task: RunCoordinator._exec_plain_task,
    Then: RunCoordinator._exec_then,
    When: RunCoordinator._exec_when,
    Parallel: RunCoordinator._exec_parallel,
    Nested: RunCoordinator._exec_nested,
    Retry: RunCoordinator._exec_retry,
    Monitored: RunCoordinator._exec_monitored,
    Locked: RunCoordinator._exec_locked,
    Checkpointed: RunCoordinator._exec_checkpointed,
    Named: RunCoordinator._exec_named,
    Adaptive: RunCoordinator._exec_adaptive,
    Predictive: RunCoordinator._exec_predictive,
    Dynamic: RunCoordinator._exec_dynamic,
    Deadline: RunCoordinator._exec_deadline,
}
