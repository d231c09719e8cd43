"""The run coordinator: one actor that runs one workflow to its outcome.

It is made of collaborators that each own their state, all used only from
the coordinator's thread, one message at a time:

- ``Interpreter`` walks the workflow (one method per kind of part);
- ``StepRunner`` runs a task step: attempts, retry decisions;
- ``AttemptTable`` owns the attempts in flight (dispatch, queueing, parking,
  timeouts, reports, re-placement after a lost node), with ``Placement``
  choosing nodes and talking to remote ones;
- ``Timers`` owns timers and cross-thread hand-overs (each comes back as a
  message); ``CancelScope`` trees say what to stop together;
- ``Journal`` turns step transitions into the step log, events and checkpoints.

The coordinator never blocks on a node: nodes report with a tell.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pykka

from actors import Canceled, NodeState, WorkflowObserver
from actors import events as ev
from runtime.cluster import NodeLost, StepOutcome
from runtime.engine._attempts import AttemptTable, NodeReport
from runtime.engine._frame import Frame
from runtime.engine._handle import RunHandle, StepLog
from runtime.engine._interpreter import Interpreter
from runtime.engine._journal import Journal
from runtime.engine._outcome import Err, Ok, Outcome
from runtime.engine._placement import Placement
from runtime.engine._ports import Engine
from runtime.engine._scope import CancelScope
from runtime.engine._steps import StepRunner
from runtime.engine._timers import Timers, Wake
from runtime.store import Replay, RunRecorder
from runtime.workflow import Workflow, monitors, planned_steps

__all__ = ["RunCoordinator", "RunSpec", "cancel_run", "pause_run"]

log = logging.getLogger(__name__)

_BATCH = 256  # most step records written in one append while reports keep coming


@dataclass(frozen=True)
class RunSpec:
    """What one run is: its id, workflow and context, where it reports, what it replays."""

    run_id: str
    workflow: Workflow[Any, Any]
    ctx: Any
    handle: RunHandle[Any]
    steps: StepLog
    observers: tuple[WorkflowObserver, ...] = ()
    recorder: RunRecorder | None = None  # None: the run writes no checkpoints
    replay: Replay | None = None  # steps recorded completed before a resume


@dataclass(frozen=True)
class _CancelRun:
    reason: str


@dataclass(frozen=True)
class _Pause:
    paused: bool


class RunCoordinator(pykka.ThreadingActor):
    """Drives one run; started by the system's ``Runs``. Only tells are sent to it."""

    def __init__(self, spec: RunSpec, engine: Engine) -> None:
        super().__init__()
        self.run_id = spec.run_id
        self._spec = spec
        self._engine = engine
        self._root = CancelScope()
        self._finished = False
        self._started_at = 0.0
        self._timers = Timers(engine.clock, self.actor_ref)
        self._journal = Journal(
            spec.run_id,
            spec.steps,
            engine.bus,
            engine.clock,
            spec.recorder,
            spec.replay,
            self,
            engine.lease,
        )
        self._journal.subscribe_run(spec.observers)
        self._journal.watch(tuple(monitors(spec.workflow)))  # before the run's first event
        self._attempts = AttemptTable(
            spec.run_id,
            engine.pool,
            Placement(spec.run_id, engine.node_name, engine.cluster),
            self._journal,
            self._timers,
            engine.max_running,
        )
        if engine.waiting is not None:
            engine.waiting.add(self._attempts)
        self._interpreter = Interpreter(
            spec.run_id,
            StepRunner(self._attempts, self._journal, self._timers),
            self._journal,
            self._timers,
            engine.locks,
        )

    # -- pykka hooks ---------------------------------------------------------------------

    def on_start(self) -> None:
        spec, engine = self._spec, self._engine
        self._started_at = engine.clock.now()
        spec.handle._set_state(NodeState.RUNNING)
        self._journal.emit(ev.Started(self.run_id, None, 1, engine.node_name, engine.clock.wall()))
        self._journal.plan.start(planned_steps(spec.workflow))
        if spec.recorder is not None:
            self._timers.schedule(self._root, engine.lease / 3, self._renew_lease)
        self._handle(
            lambda: self._interpreter.run(
                spec.workflow, spec.ctx, Frame((), self._root), self._finish
            )
        )
        self._flush_journal()
        self._admit_queued()

    def on_receive(self, message: Any) -> Any:
        if not _completes_a_step(message):
            # Whatever came before this message in the mailbox is done first: a step
            # that reported before a deadline, a cancel or a failure finishes first.
            self._flush_journal(at_once=True)
        handler = self._MESSAGES.get(type(message))
        if handler is None:
            log.warning("run %s: coordinator ignored unknown message %r", self.run_id, message)
        else:
            self._handle(lambda: handler(self, message))
        self._flush_journal()
        # Every attempt ends while handling some message: admitting the queued ones
        # here, in one place, covers results, timeouts, cancels and lost nodes alike.
        self._admit_queued()
        return None

    def _flush_journal(self, *, at_once: bool = False) -> None:
        """Write the records of completed steps once no more reports wait in the mailbox.

        Steps that complete together (parallel branches) are thus written in one
        append; a lone step (a chain) is written as soon as its report is handled.
        """
        awaiting = self._journal.awaiting
        if awaiting and (at_once or awaiting >= _BATCH or self.actor_inbox.empty()):
            self._handle(self._journal.flush)

    def on_stop(self) -> None:
        self._timers.settle_orphans()  # e.g. a lock granted as the run ended
        self._attempts.close()

    def _handle(self, action: Callable[[], None]) -> None:
        """A bug in composition code fails the run; it never leaves a caller waiting."""
        try:
            action()
        except Exception as exc:
            log.exception("run %s: coordinator error", self.run_id)
            self._finish(Err(exc))

    def _admit_queued(self) -> None:
        if self._attempts.has_queued:
            self._handle(self._attempts.admit_queued)

    # -- messages ------------------------------------------------------------------------

    def _on_node_report(self, report: NodeReport) -> None:
        self._attempts.on_report(report.incarnation, report.result)

    def _on_wake(self, wake: Wake) -> None:
        self._timers.fire(wake)

    def _on_remote_report(self, report: StepOutcome) -> None:
        self._attempts.on_remote_report(report)

    def _on_node_lost(self, lost: NodeLost) -> None:
        self._attempts.on_node_lost(lost)

    def _on_cancel(self, message: _CancelRun) -> None:
        if not self._finished:
            self._root.cancel(message.reason)
            self._finish(Err(Canceled(f"run {self.run_id} canceled: {message.reason}")))

    def _on_pause(self, message: _Pause) -> None:
        """Paused: no new attempt starts (running ones finish); unpaused: parked ones start."""
        if self._finished or message.paused == self._attempts.paused:
            return
        self._spec.handle._set_paused(message.paused)
        log.info("run %s %s", self.run_id, "paused" if message.paused else "unpaused")
        self._attempts.set_paused(message.paused)

    _MESSAGES: ClassVar[dict[type, Callable[[RunCoordinator, Any], None]]] = {
        NodeReport: _on_node_report,
        Wake: _on_wake,
        StepOutcome: _on_remote_report,
        NodeLost: _on_node_lost,
        _CancelRun: _on_cancel,
        _Pause: _on_pause,
    }

    # -- ownership and the end -----------------------------------------------------------

    def _renew_lease(self) -> None:
        if self._finished or self._journal.recorder is None:
            return
        try:
            self._journal.renew_lease()
        except Exception as exc:
            self.lost(exc)
            return
        self._timers.schedule(self._root, self._engine.lease / 3, self._renew_lease)

    def lost(self, error: BaseException) -> None:
        """The lease could not be renewed: write nothing more, cancel what runs, fail."""
        log.error("run %s: lost ownership of the run: %s", self.run_id, error)
        self._journal.recorder = None  # fenced off: write nothing more
        self._root.cancel("lost ownership of the run")
        self._finish(Err(error))

    def fail(self, error: BaseException) -> None:
        """The journal could not write: the run ends Failed (its outcome is not written)."""
        self._finish(Err(error))

    def ended(self) -> bool:
        return self._finished

    def _finish(self, outcome: Outcome) -> None:
        if self._finished:
            return
        self._finished = True
        self._attempts.closed = True
        self._timers.cancel_all()
        self._journal.settle()  # steps completed before the end are announced before it
        clock, run_id = self._engine.clock, self.run_id
        now = clock.wall()
        error: BaseException | None
        if isinstance(outcome, Ok):
            state, output, error = NodeState.COMPLETED, outcome.output, None
            duration = clock.now() - self._started_at
            self._journal.emit(ev.Completed(run_id, None, 1, duration, now))
        elif isinstance(outcome.error, Canceled):
            state, output, error = NodeState.CANCELED, None, outcome.error
            self._journal.emit(ev.Canceled(run_id, None, str(outcome.error), now))
        else:
            state, output, error = NodeState.FAILED, None, outcome.error
            self._root.cancel("run failed")
            self._journal.emit(ev.Failed(run_id, None, outcome.error, 1, True, now))
        state, output, error = self._journal.record_outcome(state, output, error)
        handle, owner = self._spec.handle, self._engine.owner
        unsubscribes = self._journal.unsubscribe_all()

        def resolve() -> None:  # on the event thread, after every event of the run
            for unsubscribe in unsubscribes:
                unsubscribe()
            handle._resolve(state, output, error)
            owner.run_finished(run_id)

        self._engine.bus.call_soon(resolve)
        self.actor_ref.stop(block=False)


def cancel_run(ref: pykka.ActorRef[Any], reason: str) -> None:
    """Ask the coordinator behind ``ref`` to cancel its run (thread-safe, non-blocking)."""
    with contextlib.suppress(pykka.ActorDeadError):  # the run already ended
        ref.tell(_CancelRun(reason))


def pause_run(ref: pykka.ActorRef[Any], paused: bool) -> None:
    """Ask the coordinator behind ``ref`` to pause or unpause its run (non-blocking)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(_Pause(paused))


def _completes_a_step(message: Any) -> bool:
    """A step's successful report: its record may wait to be written with others."""
    if isinstance(message, NodeReport):
        return message.result.state is NodeState.COMPLETED
    return isinstance(message, StepOutcome) and message.state is NodeState.COMPLETED
