"""The runs of one ActorSystem: start, resume, recover, list and control them.

Kept apart from ``ActorSystem`` (which builds the parts and owns actors, the
cluster and locks) because everything here is about one concept: a run's
lifecycle and its claim on the checkpoint store. Starting a run and shutting
down are serialised by one lock, so no coordinator can start after
``close_to_new_runs`` has collected the ones to cancel.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka

from actors import (
    Clock,
    EventBus,
    NodePool,
    NodeState,
    PersistenceError,
    RunBusy,
    SystemShutDown,
    WorkflowObserver,
)
from runtime._links import RunLinks
from runtime._run_settings import RunOptions
from runtime._stats import RunStats
from runtime.engine import (
    Engine,
    RunCoordinator,
    RunHandle,
    RunSpec,
    StepLog,
    WaitingAttempts,
    cancel_run,
    pause_run,
)
from runtime.store import (
    Checkpoint,
    CheckpointStore,
    Replay,
    RunRecorder,
    RunSummary,
    SQLiteStore,
    StepRecord,
    decode_value,
    new_owner_id,
    owner_is_dead,
    prune_runs,
    replay_from,
    stored_output,
)
from runtime.workflow import CheckpointStrategy, Workflow, persists

__all__ = ["RunSettings", "Runs"]

log = logging.getLogger(__name__)

Ctx = TypeVar("Ctx")
Out = TypeVar("Out")


@dataclass(frozen=True)
class RunSettings:
    """What every run of one system shares: its claim on the store, and its defaults."""

    owner: str  # this system's id in the store's claims
    lease: float  # seconds a claim lasts without renewal
    checkpoint: CheckpointStrategy  # unless the workflow says otherwise
    max_running_steps: int | None  # step attempts of one run in flight at once; None: no bound
    keep_finished: int = (
        1000  # handles of finished runs kept in memory, newest; the store keeps all
    )


@dataclass(frozen=True)
class Resumable:
    """A stored run read back and checked, ready to continue once claimed."""

    checkpoint: Checkpoint
    workflow: Workflow[Any, Any]
    replay: Replay
    ctx: Any
    options: RunOptions


class Runs:
    """Every run one system started or resumed, and the store their checkpoints go to.

    ``links`` gives a starting run the system's cluster and lock client (``RunLinks``).
    """

    def __init__(
        self,
        node_name: str,
        *,
        clock: Clock,
        events: EventBus,
        nodes: NodePool,
        store: CheckpointStore | None,
        settings: RunSettings,
        links: RunLinks,
        own_store: bool = False,
    ) -> None:
        self._node_name = node_name
        self._clock = clock
        self._events = events
        self._nodes = nodes
        self._store = store
        self._own_store = own_store  # opened by the system from a URL or path: closed here
        self.settings = settings
        self._links = links
        self.workflows: dict[str, Workflow[Any, Any]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._handles: dict[str, RunHandle[Any]] = {}
        self._finished: dict[str, None] = {}  # ids of finished runs, oldest first
        self._coordinators: dict[str, pykka.ActorRef[RunCoordinator]] = {}
        self._recorded: set[str] = set()  # runs started or resumed here that checkpoint
        self.waiting = WaitingAttempts()  # attempts queued under max_running_steps, all runs
        # Metrics hooks: (run id, workflow name) before a run's first event; store write seconds.
        self.on_start: Callable[[str, str], None] | None = None
        self.on_checkpoint_write: Callable[[float], None] | None = None

    @property
    def store(self) -> CheckpointStore:
        """The checkpoint store (the default SQLite file is opened on first use)."""
        if self._store is None:
            self._store = SQLiteStore(clock=self._clock)
            self._own_store = True
        return self._store

    @property
    def closed(self) -> bool:
        """Closed to new runs (the system is shutting down)."""
        return self._closed

    def live_run_ids(self) -> set[str]:
        """Ids of the runs coordinated here that have not finished."""
        with self._lock:
            return {run_id for run_id, handle in self._handles.items() if not handle.done()}

    def hand_off(self) -> list[str]:
        """Give each live checkpointed run back to the store, for another member to adopt.

        For a member of a group sharing a store, on its way out: the run's
        epoch is bumped (this coordinator's next write is refused, so it stops
        without recording an end) and its lease released, so an adopter claims
        it at its next scan instead of after a lease. Returns the ids handed off.
        """
        with self._lock:
            recorded = [
                run_id
                for run_id, handle in self._handles.items()
                if not handle.done() and run_id in self._recorded
            ]
        handed = []
        for run_id in recorded:
            try:  # not forced: a run another member took meanwhile stays theirs (RunBusy)
                epoch = self.store.claim(run_id, owner=self.settings.owner, lease=0.001)
                self.store.release(run_id, epoch=epoch)
            except PersistenceError as exc:
                log.warning(
                    "run %s: not handed off (it will be adopted after its lease): %s", run_id, exc
                )
                continue
            handed.append(run_id)
            log.info("run %s: handed off for another member to adopt", run_id)
        return handed

    @property
    def opened_store(self) -> CheckpointStore | None:
        """The store if it is open already (given, or opened by a first checkpoint)."""
        return self._store

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise SystemShutDown(f"cannot {what}: actor system {self._node_name!r} is shut down")

    # -- starting ----------------------------------------------------------------------

    def run(
        self,
        workflow: Workflow[Ctx, Out],
        ctx: Ctx,
        *,
        run_id: str | None,
        observers: Iterable[WorkflowObserver],
    ) -> RunHandle[Out]:
        if not isinstance(workflow, Workflow):
            raise TypeError(f"run(workflow) needs a Workflow, got {workflow!r}")
        run_id = run_id or uuid.uuid4().hex[:12]
        self._check_open("run a workflow")
        self._check_not_running(run_id)  # before claiming: a claim would fence the live run off
        options = RunOptions(self.settings.checkpoint, self.settings.max_running_steps)
        recorder = None
        if persists(workflow, options.checkpoint):
            initial = RunRecorder.encode_context(run_id, ctx)
            epoch = self.store.claim(run_id, owner=self.settings.owner, lease=self.settings.lease)
            if epoch != 1:  # the store knows this id: its records would be replayed as ours
                with contextlib.suppress(PersistenceError):
                    self.store.release(run_id, epoch=epoch)
                raise ValueError(
                    f"run id {run_id!r} is already in the checkpoint store: resume it, "
                    "or prune it before reusing the id"
                )
            recorder = self._recorder(
                run_id, workflow, epoch, options, initial=initial, created_at=self._clock.wall()
            )
        return self._start_recorded(run_id, workflow, ctx, observers, recorder, None, options)

    def _check_not_running(self, run_id: str) -> None:
        with self._lock:
            handle = self._handles.get(run_id)
        if handle is not None and not handle.done():
            raise ValueError(f"run id {run_id!r} is already running in this process")

    def _start_recorded(
        self,
        run_id: str,
        workflow: Workflow[Any, Any],
        ctx: Any,
        observers: Iterable[WorkflowObserver],
        recorder: RunRecorder | None,
        replay: Replay | None,
        options: RunOptions,
    ) -> RunHandle[Any]:
        """Write the run's first checkpoint and start it; give the claim back if that fails."""
        try:
            if recorder is not None:
                recorder.start()
            return self._start(
                run_id, workflow, ctx, observers, recorder, replay, options.max_running_steps
            )
        except BaseException:
            if recorder is not None:
                with contextlib.suppress(PersistenceError):
                    recorder.release()
            raise

    def _start(
        self,
        run_id: str,
        workflow: Workflow[Any, Any],
        ctx: Any,
        observers: Iterable[WorkflowObserver],
        recorder: RunRecorder | None,
        replay: Replay | None,
        max_running: int | None,
    ) -> RunHandle[Any]:
        with self._lock:
            self._check_open("run a workflow")
            if run_id in self._handles and not self._handles[run_id].done():
                raise ValueError(f"run id {run_id!r} is already running in this process")
            steps = StepLog(self._node_name)
            handle: RunHandle[Any] = RunHandle(
                run_id,
                cancel=lambda: self._cancel(run_id, "canceled by caller"),
                steps=steps,
                pause=lambda paused: self._pause(run_id, paused),
            )
            self._handles[run_id] = handle
            if recorder is not None:
                self._recorded.add(run_id)
            else:
                self._recorded.discard(run_id)
            spec = RunSpec(
                run_id,
                workflow,
                ctx,
                handle,
                steps,
                observers=tuple(observers),
                recorder=recorder,
                replay=replay,
            )
            engine = Engine(
                self._node_name,
                self._events,
                self._clock,
                self._nodes,
                owner=self,
                cluster=self._links.cluster(),
                locks=self._links.lock_client(),
                lease=self.settings.lease,
                max_running=max_running,
                waiting=self.waiting,
            )
            if self.on_start is not None:
                self.on_start(run_id, workflow.name)
            self._coordinators[run_id] = RunCoordinator.start(spec, engine)
            return handle

    def _recorder(
        self,
        run_id: str,
        workflow: Workflow[Any, Any],
        epoch: int,
        options: RunOptions,
        *,
        initial: bytes,
        created_at: float,
        records: dict[str, StepRecord] | None = None,
    ) -> RunRecorder:
        return RunRecorder(
            self.store,
            run_id=run_id,
            workflow=workflow.name,
            fingerprint=workflow.fingerprint(),
            epoch=epoch,
            strategy=options.checkpoint,
            clock=self._clock,
            initial_context=initial,
            created_at=created_at,
            records=records,
            settings=options.to_record(),
            on_write=self.on_checkpoint_write,
        )

    # -- resuming ----------------------------------------------------------------------

    def resume(
        self,
        run_id: str,
        workflow: Workflow[Any, Any] | None,
        *,
        claim_force: bool,
        structure_force: bool,
        observers: Iterable[WorkflowObserver] = (),
    ) -> RunHandle[Any]:
        self._check_open("resume a run")
        prepared = self.resumable(run_id, workflow, structure_force)  # before claiming
        self._check_not_running(run_id)
        epoch = self._claim_for_resume(run_id, claim_force)
        return self.resume_claimed(prepared, epoch, observers)

    def resumable(
        self, run_id: str, workflow: Workflow[Any, Any] | None, structure_force: bool
    ) -> Resumable:
        """Everything a resume needs, read and checked (PersistenceError if it cannot be)."""
        checkpoint = self.store.load(run_id)
        if checkpoint.state == str(NodeState.COMPLETED):
            # Nothing left to do, and a resume would overwrite its recorded outcome.
            raise PersistenceError(
                f"run {run_id} is already Completed: there is nothing to resume "
                "(system.stored_result(run_id) gives its output)"
            )
        workflow = workflow or self.workflows.get(checkpoint.workflow)
        if workflow is None:
            raise PersistenceError(
                f"run {run_id}: no workflow named {checkpoint.workflow!r} is registered; "
                "pass it to resume(run_id, workflow) or ActorSystem(workflows=[...])"
            )
        if workflow.fingerprint() != checkpoint.fingerprint and not structure_force:
            raise PersistenceError(
                f"run {run_id}: the workflow's structure changed since the run started "
                f"(fingerprint {checkpoint.fingerprint} recorded, {workflow.fingerprint()} now); "
                "resume with force=True to run it anyway"
            )
        replay = replay_from(checkpoint)
        ctx = decode_value(checkpoint.context, what=f"run {run_id} context")
        defaults = RunOptions(self.settings.checkpoint, self.settings.max_running_steps)
        options = RunOptions.from_record(run_id, checkpoint.settings, defaults=defaults)
        return Resumable(checkpoint, workflow, replay, ctx, options)

    def resume_claimed(
        self, prepared: Resumable, epoch: int, observers: Iterable[WorkflowObserver] = ()
    ) -> RunHandle[Any]:
        """Continue a run this system holds at ``epoch``, with the run's recorded settings."""
        checkpoint, workflow = prepared.checkpoint, prepared.workflow
        run_id = checkpoint.run_id
        recorder = self._recorder(
            run_id,
            workflow,
            epoch,
            prepared.options,
            initial=checkpoint.context,
            created_at=checkpoint.created_at,
            records=prepared.replay.records,
        )
        # The header is written once; a run resumed under a changed workflow rewrites it,
        # and so does one recorded without settings (they are recorded from now on).
        changed = workflow.fingerprint() != checkpoint.fingerprint
        recorder.rewrite_header = changed or not checkpoint.settings
        return self._start_recorded(
            run_id, workflow, prepared.ctx, observers, recorder, prepared.replay, prepared.options
        )

    def _claim_for_resume(self, run_id: str, force: bool) -> int:
        try:
            return self.store.claim(
                run_id, owner=self.settings.owner, lease=self.settings.lease, force=force
            )
        except RunBusy:
            summary = next((r for r in self.store.list() if r.run_id == run_id), None)
            if summary is None or not owner_is_dead(summary.owner):
                raise
            log.warning("run %s: its owner %s is dead; taking the run over", run_id, summary.owner)
            # Free only the dead owner's epoch (a no-op if anyone claimed since), then claim
            # without force: of two processes taking over at once, the second one's claim
            # meets the first one's live lease and raises RunBusy. A forced claim here would
            # let both win, each fencing the other off after both ran the step in flight.
            self.store.release(run_id, epoch=summary.epoch)
            return self.store.claim(run_id, owner=self.settings.owner, lease=self.settings.lease)

    # -- looking and steering ----------------------------------------------------------

    def summaries(self) -> list[RunSummary]:
        summaries = list(self._store.list()) if self._store is not None else []
        known = {s.run_id for s in summaries}
        with self._lock:
            handles = [h for h in self._handles.values() if h.id not in known]
        for handle in handles:
            steps = handle.steps()
            summaries.append(
                RunSummary(
                    run_id=handle.id,
                    workflow="",
                    state=str(handle.state),
                    epoch=0,
                    owner=self.settings.owner,
                    lease_until=None,
                    created_at=0.0,
                    updated_at=0.0,
                    steps_total=len(steps),
                    steps_completed=sum(1 for st in steps if st.state is NodeState.COMPLETED),
                    has_checkpoint=False,
                )
            )
        return summaries

    def stats(self) -> list[RunStats]:
        with self._lock:
            handles = list(self._handles.values())
        return [
            RunStats(
                h.id,
                str(h.state),
                h.paused,
                len(h.steps()),
                sum(1 for step in h.steps() if step.state is NodeState.COMPLETED),
            )
            for h in handles
        ]

    def prune(self, older_than: float, states: Iterable[str], *, dry_run: bool) -> list[str]:
        return prune_runs(
            self.store,
            older_than=older_than,
            now=self._clock.wall(),
            # Not this system's owner id: a claim by the owner of a run passes over its
            # live lease, so prune would take (and fence off) a run resumed here meanwhile.
            owner=new_owner_id(),
            states=states,
            dry_run=dry_run,
        )

    def stored_result(self, run_id: str) -> Any:
        return stored_output(self.store.load(run_id))

    def handle(self, run_id: str) -> RunHandle[Any]:
        with self._lock:
            handle = self._handles.get(run_id)
        if handle is None:
            raise KeyError(
                f"run {run_id!r} is not running here and not among the "
                f"{self.settings.keep_finished} most recently finished ones "
                "(its checkpoints, if any, are in the store: stored_result, actorflow show)"
            )
        return handle

    def control(self, run_id: str, action: str) -> bool:
        if action not in ("cancel", "pause", "unpause"):
            raise ValueError(f"action must be cancel, pause or unpause, got {action!r}")
        with self._lock:
            handle = self._handles.get(run_id)
        if handle is None or handle.done():
            return False
        if action == "cancel":
            handle.cancel()
        else:
            handle.pause() if action == "pause" else handle.unpause()
        return True

    def coordinator(self, run_id: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            return self._coordinators.get(run_id)

    def live_coordinators(self) -> list[pykka.ActorRef[Any]]:
        with self._lock:
            return list(self._coordinators.values())

    def _cancel(self, run_id: str, reason: str) -> None:
        ref = self.coordinator(run_id)
        if ref is not None:
            cancel_run(ref, reason)

    def _pause(self, run_id: str, paused: bool) -> None:
        ref = self.coordinator(run_id)
        if ref is not None:
            pause_run(ref, paused)

    def run_finished(self, run_id: str) -> None:
        """Called once per run, after its handle resolved: forget the oldest finished ones."""
        with self._lock:
            self._coordinators.pop(run_id, None)
            self._finished.pop(run_id, None)  # resumed in this process: now the newest
            self._finished[run_id] = None
            while len(self._finished) > self.settings.keep_finished:
                oldest = next(iter(self._finished))
                del self._finished[oldest]
                handle = self._handles.get(oldest)
                if handle is not None and handle.done():  # not resumed again meanwhile
                    del self._handles[oldest]

    # -- shutdown ----------------------------------------------------------------------

    def close_to_new_runs(self, reason: str) -> None:
        """Refuse new runs from now on and cancel every live one."""
        with self._lock:
            self._closed = True
            coordinators = list(self._coordinators.values())
        for ref in coordinators:
            cancel_run(ref, reason)

    def wait_all(self, timeout: float) -> None:
        with self._lock:
            handles = list(self._handles.values())
        for handle in handles:
            handle.wait(timeout)

    def close_store(self) -> None:
        """Close the default store if this system opened it (a given store is the caller's)."""
        if self._own_store and self._store is not None:
            self._store.close()
