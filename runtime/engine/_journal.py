"""The journal: turns a run's step transitions into its step log, events and checkpoints.

Every state change of a step goes through one method here, so the step log
that ``RunHandle.steps()`` shows, the events observers get and the records the
store keeps cannot disagree. A store that refuses a write (fenced off by a
newer owner, or broken) stops the run: nothing more is written after that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from actors import Clock, EventBus, NodeState, PersistenceError, StepResult, WorkflowObserver
from actors import events as ev
from runtime.engine._frame import Observers
from runtime.engine._handle import StepLog
from runtime.engine._plan import RunPlan
from runtime.store import Replay, RunRecorder
from runtime.workflow import CheckpointStrategy

__all__ = ["Journal", "RunStopper"]

log = logging.getLogger(__name__)


class RunStopper(Protocol):
    """The coordinator, as the journal sees it: a failed write ends the run."""

    def fail(self, error: BaseException) -> None: ...

    def lost(self, error: BaseException) -> None:
        """The run's lease could not be renewed (another owner took it): stop it all."""
        ...

    def ended(self) -> bool: ...


class Journal:
    """One run's record keeper (coordinator thread only, except ``emit``)."""

    def __init__(
        self,
        run_id: str,
        steps: StepLog,
        bus: EventBus,
        clock: Clock,
        recorder: RunRecorder | None,
        replay: Replay | None,
        stopper: RunStopper,
        lease: float,
    ) -> None:
        self.run_id = run_id
        self._steps = steps
        self._bus = bus
        self._clock = clock
        self.recorder = recorder  # None: this run writes nothing (or may write no more)
        self._replay = dict(replay.completed) if replay is not None else {}
        self._stopper = stopper
        self._lease = lease
        self._renewed_at = clock.now()  # the run was claimed just before it was made
        self.plan = RunPlan(run_id, self.emit, clock)  # the Planned events of the run
        self._monitors: dict[str, Observers] = {}  # step -> its .monitored observers
        self._watched: list[WorkflowObserver] = []
        self._unsubscribes: list[Callable[[], None]] = []
        # Completed steps whose records wait for flush(): (step, result, continue it).
        self._awaiting: list[tuple[str, StepResult, Callable[[], None]]] = []

    # -- observers -----------------------------------------------------------------------

    def subscribe_run(self, observers: Observers) -> None:
        """Observers of the whole run (``system.run(..., observers=...)``)."""
        run_id = self.run_id
        for observer in observers:
            self._unsubscribes.append(
                self._bus.subscribe(observer, lambda e: getattr(e, "run_id", None) == run_id)
            )

    def watch(self, observers: Observers) -> None:
        """Subscribe ``.monitored`` observers to this run's events of their steps."""
        for observer in observers:
            if any(o is observer for o in self._watched):
                continue
            self._watched.append(observer)
            self._unsubscribes.append(self._bus.subscribe(observer, self._monitored_by(observer)))

    def _monitored_by(self, observer: WorkflowObserver) -> Callable[[ev.Event], bool]:
        """Run-level events, and events of the steps ``observer`` monitors."""
        run_id, monitors = self.run_id, self._monitors

        def accepts(event: ev.Event) -> bool:
            if getattr(event, "run_id", None) != run_id:
                return False
            step = getattr(event, "step", None)
            return step is None or any(o is observer for o in monitors.get(step, ()))

        return accepts

    def monitor(self, step: str, observers: Observers) -> None:
        if observers:
            self._monitors[step] = observers

    def unsubscribe_all(self) -> list[Callable[[], None]]:
        """Hand over the unsubscriptions (the run's end runs them after its last event)."""
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        return unsubscribes

    def emit(self, event: ev.Event) -> None:
        """Any thread (node actors emit their own Started and StateChanged)."""
        self._bus.emit(event)

    # -- step transitions ----------------------------------------------------------------

    def replayed(self, step: str) -> tuple[Any, Any] | None:
        """``(output, ctx)`` of a step recorded completed before a resume, once; else None."""
        recorded = self._replay.pop(step, None)
        if recorded is not None:
            self._steps.update(step, state=NodeState.COMPLETED, resumed=True)
            self.plan.resumed(step)
        return recorded

    def step_started(self, step: str, attempt: int, node: str) -> None:
        if attempt == 1:
            self._steps.update(
                step, state=NodeState.RUNNING, attempts=1, started_at=self._clock.wall(), node=node
            )
        else:
            self._steps.update(step, state=NodeState.RUNNING, attempts=attempt, node=node)

    def step_completed(
        self,
        step: str,
        result: StepResult,
        strategy: CheckpointStrategy | None,
        then: Callable[[], None],
    ) -> None:
        """Record a completed step; ``then()`` once its record is durable (if due to be written).

        A record due to be written waits for the next ``flush()``, so records of
        steps that complete together (parallel branches) go to the store in one
        append, one transaction; nothing depending on a step runs before its
        record is durable, and nothing about it is announced before either.
        """
        recorder = self.recorder
        if recorder is None or not (strategy or recorder.strategy).enabled:
            self._completed(step, result, written=False)
            then()
            return
        report = self._steps.get(step)
        try:
            due = recorder.step_completed(
                step,
                output=result.output,
                ctx=result.ctx,
                attempts=result.attempt,
                started_at=report.started_at if report else None,
                finished_at=self._clock.wall(),
                node=(report.node or None) if report else None,
                strategy=strategy,
                write=False,
            )
        except Exception as exc:  # its output cannot be encoded, or the store failed
            self.settle()
            self._store_failed(exc)
            return
        if not due:
            self._completed(step, result, written=False)
            then()
            return
        self._awaiting.append((step, result, then))

    @property
    def awaiting(self) -> int:
        """Completed steps whose records wait for ``flush()``."""
        return len(self._awaiting)

    def flush(self) -> None:
        """Write the waiting records in one append; announce them all, then continue them.

        Continuations run in the order their steps completed, and stop once one of
        them ended the run (the old coordinator would not have run the others).
        """
        self._continue(self._write_awaiting())

    def settle(self) -> None:
        """The run is ending: write and announce the waiting records, continue none."""
        self._write_awaiting()

    def _continue(self, continuations: list[Callable[[], None]]) -> None:
        for then in continuations:
            if self._stopper.ended():
                return
            then()

    def _write_awaiting(self) -> list[Callable[[], None]]:
        """Write and announce the waiting records; their continuations, in order.

        If the write fails, each waiting step ends Canceled (its record is not
        durable, so it is not announced Completed) and the run stops.
        """
        if not self._awaiting:
            return []
        recorder = self.recorder
        try:
            if recorder is None:
                raise PersistenceError(f"run {self.run_id}: the checkpoint store was lost")
            recorder.flush()
        except Exception as exc:
            self._store_failed(exc)
            return []
        return self._announce_awaiting()

    def _announce_awaiting(self) -> list[Callable[[], None]]:
        """The waiting records are durable: announce them; their continuations, in order."""
        awaiting, self._awaiting = self._awaiting, []
        for step, result, _then in awaiting:
            self._completed(step, result, written=True)
        return [then for _step, _result, then in awaiting]

    def _completed(self, step: str, result: StepResult, *, written: bool) -> None:
        now = self._clock.wall()
        if written and self.recorder is not None:
            self.emit(ev.Checkpointed(self.run_id, step, self.recorder.epoch, now))
        self._steps.update(
            step, state=NodeState.COMPLETED, attempts=result.attempt, finished_at=now, error=None
        )
        duration = result.finished_at - result.started_at
        self.emit(ev.Completed(self.run_id, step, result.attempt, duration, now))

    def step_failed(self, step: str, attempt: int, error: BaseException, final: bool) -> None:
        now = self._clock.wall()
        self._steps.update(
            step, state=NodeState.FAILED, attempts=attempt, error=error, finished_at=now
        )
        self.emit(ev.Failed(self.run_id, step, error, attempt, final, now))

    def step_failed_for_good(self, step: str, attempt: int, error: BaseException) -> bool:
        """Record a step no retry will run again; False if the store refused."""
        if self.recorder is None:
            return True
        report = self._steps.get(step)
        try:
            self.recorder.step_failed(
                step,
                error=error,
                attempts=attempt,
                started_at=report.started_at if report else None,
                finished_at=self._clock.wall(),
                node=(report.node or None) if report else None,
            )
        except Exception as exc:
            self._store_failed(exc)
            return False
        self._continue(self._announce_awaiting())  # their records went with this one
        return True

    def step_retrying(self, step: str, attempt: int, delay: float, error: BaseException) -> None:
        """``step`` (or a composite part's key) runs again as ``attempt`` after ``delay`` s."""
        self.emit(ev.Retrying(self.run_id, step, attempt, delay, error, self._clock.wall()))

    def step_canceled(self, step: str, reason: str) -> None:
        now = self._clock.wall()
        self._steps.update(step, state=NodeState.CANCELED, finished_at=now)
        self.emit(ev.Canceled(self.run_id, step, reason, now))

    def step_skipped(self, step: str) -> None:
        self._steps.update(step, skipped=True)

    # -- the run -------------------------------------------------------------------------

    def renew_lease(self) -> None:
        """Extend the run's ownership; raises if another owner took it (or the store failed)."""
        if self.recorder is not None:
            began = self._clock.now()
            self.recorder.renew(self._lease)
            self._renewed_at = began  # the store counts the lease from later still

    def lease_holds(self) -> bool:
        """Before an attempt starts: True if the run is still ours to run.

        The renewal timer runs every third of the lease; a renewal older than
        half a lease means this process stood still (stopped, swapped out) and
        another may have adopted the run meanwhile, while a timer due then (a
        retry) would start a step right away. So renew first, here; if that
        fails the run is lost (``RunStopper.lost``) and nothing starts.
        """
        if self.recorder is None or self._clock.now() - self._renewed_at < self._lease / 2:
            return True
        try:
            self.renew_lease()
        except Exception as exc:
            self._stopper.lost(exc)
            return False
        return True

    def record_outcome(
        self, state: NodeState, output: Any, error: BaseException | None
    ) -> tuple[NodeState, Any, BaseException | None]:
        """Write the run's final checkpoint and give its lease back.

        Returns the outcome to report: a run whose final write failed is Failed.
        """
        if self.recorder is None:
            return state, output, error
        try:
            self.recorder.finish(state, output, error)
            self.recorder.release()
        except Exception as exc:
            log.error("run %s: final checkpoint failed: %s", self.run_id, exc)
            if error is None:
                return NodeState.FAILED, None, exc
        return state, output, error

    def _store_failed(self, exc: Exception) -> None:
        log.error("run %s: checkpoint write failed, stopping the run: %s", self.run_id, exc)
        self.recorder = None  # a fenced-off (zombie) or broken writer writes nothing more
        awaiting, self._awaiting = self._awaiting, []
        for step, _result, _then in awaiting:  # not durable, so never announced Completed
            self.step_canceled(step, f"its checkpoint was not written: {exc}")
        self._stopper.fail(exc)
