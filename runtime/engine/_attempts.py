"""The attempt table: the only owner of a run's step attempts in flight.

Invariant: ``_in_flight[step]`` exists exactly while an attempt of ``step`` is
running (here or on another node) and the coordinator waits for its report;
its incarnation and attempt number match the node actor that runs it, so a report
from an older node actor or attempt (canceled, timed out, re-placed) is ignored.

Attempts that may not start yet wait here too: ``_parked`` while the run is
paused, ``_queued`` (in the order they became ready, at most one per step)
while ``max_running`` attempts are in flight; a queued attempt whose scope is
canceled leaves the queue at once, so ``waiting`` never counts it. Every call
comes from the coordinator's thread.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors import (
    CancelNode,
    NodePool,
    NodeState,
    NotifyingEvent,
    PermanentError,
    Start,
    StepResult,
    StepTimeout,
)
from runtime.cluster import NodeLost, StepOutcome
from runtime.engine._journal import Journal
from runtime.engine._placement import Placement
from runtime.engine._scope import CancelScope
from runtime.engine._timers import Timers
from runtime.workflow import PlacementStrategy, Task
from transport import NodeDown, WorkflowError

__all__ = ["Attempt", "AttemptTable", "NodeReport", "StepCall"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class StepCall:
    """One step to run: what, on which context, where it belongs, and who gets its results."""

    step: str
    task: Task
    ctx: Any
    scope: CancelScope
    on_result: Callable[[StepResult], None]
    tokens: dict[str, int]  # fencing tokens of the locks held around it
    placement: PlacementStrategy | None


@dataclass(frozen=True, eq=False)
class Attempt:
    """A dispatched attempt the coordinator expects a report for."""

    call: StepCall
    number: int  # the step's attempt number across node actor incarnations
    incarnation: int
    node_attempt: int  # the node actor's own attempt number, to match its report


@dataclass(frozen=True)
class NodeReport:
    """Coordinator message: a local node actor's result for one of its attempts."""

    incarnation: int
    result: StepResult


@dataclass(eq=False)
class _StepActor:
    """The node actor hosting one step: local (``ref``), or on another ``node`` (no ref)."""

    ref: pykka.ActorRef[Any] | None
    incarnation: int
    cancel_event: NotifyingEvent
    node: str
    state: NodeState = NodeState.PENDING
    starts: int = 0  # Start messages sent; a local node actor numbers its attempts the same way


class AttemptTable:
    """Dispatch, queueing under ``max_running``, parking, timeouts, reports and re-placement."""

    def __init__(
        self,
        run_id: str,
        pool: NodePool,
        placement: Placement,
        journal: Journal,
        timers: Timers,
        max_running: int | None,
    ) -> None:
        self._run_id = run_id
        self._pool = pool
        self._placement = placement
        self._journal = journal
        self._timers = timers
        self._max_running = max_running
        self._in_flight: dict[str, Attempt] = {}
        self._actors: dict[str, _StepActor] = {}
        self._numbers: dict[str, int] = {}  # step -> attempts started so far
        self._incarnations = itertools.count(1)
        # Failed, not final: waiting for a rerun (its own retry timer, or an enclosing
        # .retry()); a cancel before that rerun still ends its story with Canceled.
        self._rerun_pending: set[str] = set()
        # step -> its attempt waiting for a free slot, oldest first
        self._queued: collections.OrderedDict[str, tuple[StepCall, frozenset[str]]] = (
            collections.OrderedDict()
        )
        self._parked: list[tuple[StepCall, frozenset[str]]] = []
        self.paused = False
        self.closed = False  # the run has finished: nothing more starts

    # -- starting ------------------------------------------------------------------------

    def dispatch(self, call: StepCall, exclude: frozenset[str] = frozenset()) -> None:
        """Start one attempt of ``call.step`` now, or hold it back (paused, or at the bound)."""
        if call.scope.canceled:
            return
        call.scope.on_cancel(lambda reason: self.cancel(call.step, reason), key=call.step)
        # A step inside a held lock is never queued: queued behind a step that waits for
        # that lock, neither would ever end (priority inversion). It may exceed the bound.
        if self.paused:
            self._parked.append((call, exclude))
            return  # a held-back rerun stays pending: a cancel still ends its story
        if self._at_capacity() and call.step not in self._in_flight and not call.tokens:
            self._queued[call.step] = (call, exclude)
            return
        self._start(call, exclude)

    def _start(self, call: StepCall, exclude: frozenset[str]) -> None:
        if self.closed or not self._journal.lease_holds():
            return  # the run ended, or was just lost to another owner: nothing starts
        step, task = call.step, call.task
        self._rerun_pending.discard(step)
        try:
            node = self._placement.choose(step, task, exclude, call.placement)
        except PermanentError as exc:  # nowhere to run it: the step fails now, not later
            number = self._numbers.get(step, 0) + 1
            self._numbers[step] = number
            log.warning("run %s: step %s cannot be placed: %s", self._run_id, step, exc)
            call.on_result(StepResult(step, NodeState.FAILED, number, error=exc))
            return
        self._placement.book.started(node)
        actor = self._reusable_node(step, node)
        if actor is None:
            actor = self._new_node(step, task, node)
        actor.state = NodeState.RUNNING
        actor.starts += 1
        number = self._numbers.get(step, 0) + 1
        self._numbers[step] = number
        node_attempt = actor.starts if actor.ref is not None else number
        self._in_flight[step] = Attempt(call, number, actor.incarnation, node_attempt)
        self._journal.step_started(step, number, node)
        if actor.ref is not None:
            actor.ref.tell(Start(call.ctx, call.tokens))
        elif not self._send_remote(call, actor, number, exclude):
            return
        timeout = task.attempt_timeout
        if timeout is not None:
            incarnation = actor.incarnation
            self._timers.schedule(
                call.scope,
                timeout,
                lambda: self._timed_out(step, incarnation, node_attempt, timeout),
            )

    def _reusable_node(self, step: str, node: str) -> _StepActor | None:
        """The step's node actor if it sits in Failed on ``node`` (a retry reuses it), else None."""
        actor = self._actors.get(step)
        if actor is not None and actor.cancel_event.is_set():
            # Canceled before (a failed sibling, then an outer retry): never reuse it, and
            # never drop it untracked: a running one stops after its task returns.
            del self._actors[step]
            self._let_go(actor)
            return None
        if actor is None or actor.state is not NodeState.FAILED or actor.node != node:
            return None
        return actor

    def _new_node(self, step: str, task: Task, node: str) -> _StepActor:
        incarnation = next(self._incarnations)
        cancel_event = NotifyingEvent()
        ref: pykka.ActorRef[Any] | None = None
        if node == self._placement.node_name:
            ref = self._pool.acquire(
                step,
                task.fn,
                run_id=self._run_id,
                emit=self._journal.emit,
                report=_Reporter(self._timers.inbox, incarnation),
                cancel_event=cancel_event,
                node=node,
            )
        actor = _StepActor(ref, incarnation, cancel_event, node)
        self._actors[step] = actor
        return actor

    def _send_remote(
        self, call: StepCall, actor: _StepActor, number: int, exclude: frozenset[str]
    ) -> bool:
        """Send the attempt to its node; on a refusal, fail the attempt at once.

        A placed (unpinned) step whose node went down or left between placement
        and sending is placed again, on another node.
        """
        try:
            self._placement.send(
                actor.node, call.step, call.task, call.ctx, actor.incarnation, number, call.tokens
            )
        except WorkflowError as exc:
            if isinstance(exc, NodeDown) and call.task.on is None:
                log.info(
                    "run %s: step %s not sent to %s: %s", self._run_id, call.step, actor.node, exc
                )
                self._replace(call.step, actor.node, exclude)
                return False
            del self._in_flight[call.step]
            actor.state = NodeState.FAILED
            call.on_result(StepResult(call.step, NodeState.FAILED, number, error=exc))
            return False
        return True

    def _at_capacity(self) -> bool:
        return self._max_running is not None and len(self._in_flight) >= self._max_running

    def admit_queued(self) -> None:
        """Start queued attempts, oldest first, while fewer than ``max_running`` run."""
        while self._queued and not self._at_capacity() and not self.closed:
            self.dispatch(*self._queued.popitem(last=False)[1])

    @property
    def has_queued(self) -> bool:
        return bool(self._queued)

    @property
    def waiting(self) -> int:
        """Attempts queued behind the bound (any thread: a snapshot); 0 once the run ended."""
        return 0 if self.closed else len(self._queued)

    def set_paused(self, paused: bool) -> None:
        """Paused: no new attempt starts (running ones finish); unpaused: the parked ones start."""
        self.paused = paused
        if not paused:
            parked, self._parked = self._parked, []
            for call, exclude in parked:
                self.dispatch(call, exclude)

    def await_rerun(self, step: str) -> None:
        """``step`` failed but will run again (its retry, or an enclosing one)."""
        self._rerun_pending.add(step)

    # -- reports -------------------------------------------------------------------------

    def on_report(self, incarnation: int, result: StepResult) -> None:
        """A node actor's result: hand it on if it answers the attempt in flight, else drop it."""
        step = result.step
        attempt = self._in_flight.get(step)
        actor = self._actors.get(step)
        if actor is not None and actor.incarnation == incarnation:
            actor.state = result.state
        if (
            attempt is None
            or attempt.incarnation != incarnation
            or attempt.node_attempt != result.attempt
            or attempt.call.scope.canceled
        ):
            if (
                actor is not None
                and actor.incarnation == incarnation
                and result.state is not NodeState.FAILED
            ):
                self.retire(step)
            return  # stale: canceled, timed out, or superseded
        del self._in_flight[step]
        if actor is not None:
            self._placement.book.finished(
                actor.node,
                ok=result.state is NodeState.COMPLETED,
                duration=max(0.0, result.finished_at - result.started_at),
            )
        if result.attempt != attempt.number:  # a local node numbers only its own attempts
            result = dataclasses.replace(result, attempt=attempt.number)
        attempt.call.on_result(result)

    def on_remote_report(self, message: StepOutcome) -> None:
        remote = self._placement.decode(message)
        step = remote.result.step
        actor = self._actors.get(step)
        if message.sender and (actor is None or actor.node != message.sender):
            # Only the node the step was placed on may report it (by its authenticated name).
            log.warning(
                "run %s: result for %s from %s dropped (not its node)",
                self._run_id,
                step,
                message.sender,
            )
            return
        if remote.refused and self._replace_refused(
            step, remote.incarnation, remote.result.attempt
        ):
            return
        self.on_report(remote.incarnation, remote.result)

    def _timed_out(self, step: str, incarnation: int, node_attempt: int, timeout: float) -> None:
        attempt = self._in_flight.get(step)
        if (
            attempt is None
            or attempt.incarnation != incarnation
            or attempt.node_attempt != node_attempt
        ):
            return
        actor = self._actors.pop(step, None)  # abandoned: a retry gets a fresh node actor
        if actor is not None:
            self._abandon(step, actor, "timed out")
        del self._in_flight[step]
        error = StepTimeout(f"step {step!r} attempt {attempt.number} ran longer than {timeout}s")
        now = self._timers.now()
        attempt.call.on_result(
            StepResult(
                step,
                NodeState.FAILED,
                attempt.number,
                error=error,
                started_at=now - timeout,
                finished_at=now,
            )
        )

    # -- lost nodes --------------------------------------------------------------------

    def _replace_refused(self, step: str, incarnation: int, node_attempt: int) -> bool:
        """A draining node refused the step before running it: place it on another node.

        Not an attempt (the step never started there), so no retry budget is
        spent and no ``Retrying`` is emitted. A step pinned to that node, or a
        stale refusal, is not re-placed (False: it is handled as a failure).
        """
        attempt = self._in_flight.get(step)
        actor = self._actors.get(step)
        if (
            attempt is None
            or actor is None
            or attempt.incarnation != incarnation
            or actor.incarnation != incarnation
            or attempt.node_attempt != node_attempt
            or attempt.call.scope.canceled
            or attempt.call.task.on is not None
        ):
            return False
        log.info(
            "run %s: step %s refused by draining node %s; re-placing",
            self._run_id,
            step,
            actor.node,
        )
        self._replace(step, actor.node, frozenset())
        return True

    def _replace(self, step: str, node: str, exclude: frozenset[str]) -> None:
        """Dispatch the attempt waiting on ``node`` again elsewhere, as the same attempt.

        ``exclude`` grows with every node tried, so this ends: with every peer
        excluded, the step runs on this node.
        """
        attempt = self._in_flight.pop(step)
        self._actors.pop(step, None)
        self._placement.book.finished(node, ok=False, duration=0.0)
        self._numbers[step] = attempt.number - 1
        self.dispatch(attempt.call, exclude | {node})

    def on_node_lost(self, lost: NodeLost) -> None:
        """Re-place, on live nodes, every attempt in flight on a node that went down or left."""
        for step, attempt in list(self._in_flight.items()):
            actor = self._actors.get(step)
            if actor is None or actor.node != lost.node or attempt.call.scope.canceled:
                continue
            del self._in_flight[step]
            self._actors.pop(step, None)
            self._placement.book.finished(lost.node, ok=False, duration=0.0)
            error = NodeDown(f"node {lost.node} {lost.status} while running step {step!r}")
            self._journal.step_retrying(step, attempt.number + 1, 0.0, error)
            self.dispatch(attempt.call, frozenset({lost.node}))

    # -- ending --------------------------------------------------------------------------

    def cancel(self, step: str, reason: str) -> None:
        """Cancel ``step`` if in flight, queued or waiting for a rerun (its scope was canceled).

        A queued attempt is dropped: it never started, so it has no story to end
        unless it was a rerun (then it ends Canceled, as a pending rerun does).
        """
        self._queued.pop(step, None)
        was_in_flight = self._in_flight.pop(step, None) is not None
        if not (was_in_flight or step in self._rerun_pending):
            return  # finished (or failed for good): its state stays
        self._rerun_pending.discard(step)
        actor = self._actors.get(step)
        if actor is not None:
            actor.cancel_event.set()
            if actor.ref is not None:
                actor.ref.tell(CancelNode(reason))
            else:
                self._placement.cancel(actor.node, step)
        self._journal.step_canceled(step, reason)

    def retire(self, step: str) -> None:
        """The step's task returned and the step is over: recycle its actor."""
        actor = self._actors.pop(step, None)
        if actor is not None and actor.ref is not None:
            self._pool.release(actor.ref)

    def _abandon(self, step: str, actor: _StepActor, reason: str) -> None:
        """Stop waiting for a node actor whose task may still run: never reuse its actor."""
        actor.cancel_event.set()
        if actor.ref is not None:
            actor.ref.stop(block=False)
        else:
            self._placement.cancel(actor.node, step)
        log.info("run %s: step %s abandoned (%s)", self._run_id, step, reason)

    def _let_go(self, actor: _StepActor) -> None:
        """Give a local node actor back: to the pool if its task returned, else stop it after."""
        if actor.ref is None:
            return
        if actor.state is NodeState.RUNNING:  # its task has not returned: never reuse
            actor.ref.stop(block=False)
        else:
            self._pool.release(actor.ref)

    def close(self) -> None:
        """The coordinator stops: let every node actor go, and tell remote nodes the run ended."""
        for actor in self._actors.values():
            if actor.state is NodeState.RUNNING:
                actor.cancel_event.set()
            self._let_go(actor)
        self._actors.clear()
        self._placement.end_run()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)


@dataclass(frozen=True)
class _Reporter:
    """A local node actor's report callback: its result goes to the coordinator as a message."""

    inbox: pykka.ActorRef[Any]
    incarnation: int

    def __call__(self, result: StepResult) -> None:
        # The run ended first (e.g. canceled): the report is stale, and raising here would
        # fail the node actor (logged as unhandled; stopped without its on_stop).
        with contextlib.suppress(pykka.ActorDeadError):
            self.inbox.tell(NodeReport(self.incarnation, result))
