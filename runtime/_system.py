"""ActorSystem: one per process; owns the clock, the event bus, runs and actors.

It is an explicit context manager with its own bookkeeping (no process-global
singleton): everything it spawned is stopped on ``shutdown``, last spawned
first, and nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import pykka

from actors import (
    ChildSpec,
    Clock,
    CompositionError,
    EventBus,
    LockManager,
    NodePool,
    NodeState,
    PersistenceError,
    RealClock,
    RestartIntensity,
    RunBusy,
    Strategy,
    Supervisor,
    SystemShutDown,
    WorkflowObserver,
)
from runtime._checkpoint import (
    CheckpointStrategy,
    Replay,
    RunRecorder,
    new_owner_id,
    owner_is_dead,
    replay_from,
)
from runtime._cluster import Cluster
from runtime._handle import RunHandle, StepLog
from runtime._locks import Lock, LockClient
from runtime._persist import decode_value
from runtime._registry import Registry, qualified_name
from runtime._remote import Ref
from runtime._run import RunCoordinator, cancel_run, pause_run
from runtime._sqlite_store import SQLiteStore
from runtime._stats import RunStats, SystemStats
from runtime._store import CheckpointStore, RunSummary, StepRecord
from runtime._workflow import Workflow, persists, tasks_of
from transport import Address, NodeDown, TransportSettings, load_security

__all__ = ["ActorSystem"]

log = logging.getLogger(__name__)

Ctx = TypeVar("Ctx")
Out = TypeVar("Out")
A = TypeVar("A", bound=pykka.Actor)


class ActorSystem:
    """A local actor system: spawn actors, supervise them, run and resume workflows.

    Args:
        name: this node's name (the first part of every address it hosts).
        clock: time source for backoffs, timeouts, leases and intensity windows
            (``ManualClock`` in tests); a ``RealClock`` by default.
        store: where checkpoints go. Default: a ``SQLiteStore`` at
            ``./.actorflow/state.db``, opened only when a run first checkpoints.
        checkpoint: the default strategy of every run (``NONE`` unless set);
            ``wf.checkpoint(strategy)`` overrides it for part of a workflow.
        workflows: workflows that ``resume`` and ``recover`` may look up by name.
        recover: on start, resume every unfinished run in the store whose owner
            is gone (its lease expired, or its process on this host is dead).
        lease: seconds a run's ownership lasts without renewal (renewed every third).
        listen: ZeroMQ endpoint this node binds (``tcp://127.0.0.1:0`` picks a port);
            with ``listen`` or ``join`` the system is a cluster member.
        join: seed endpoints of nodes already in the cluster.
        keys: a keys directory (``actorflow keys generate``): CURVE encryption and
            the allowlist of node public keys. Without it the node refuses to start
            unless ``plaintext=True`` and every endpoint is loopback.
        plaintext: explicitly allow unencrypted TCP on loopback (tests, demos).
        transport: timing and bounds of the transport (heartbeats, failure detector).
        locks_on: the node whose ``LockManager`` serves ``lock()`` and
            ``wf.locked()``; this node when omitted. Every member of a cluster
            should name the same node.
    """

    def __init__(
        self,
        name: str = "local",
        *,
        clock: Clock | None = None,
        store: CheckpointStore | None = None,
        checkpoint: CheckpointStrategy = CheckpointStrategy.NONE,
        workflows: Iterable[Workflow[Any, Any]] = (),
        recover: bool = False,
        lease: float = 10.0,
        listen: str | None = None,
        join: Sequence[str] = (),
        keys: str | os.PathLike[str] | None = None,
        plaintext: bool = False,
        transport: TransportSettings | None = None,
        locks_on: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"ActorSystem(name) must be a non-empty str without '/', got {name!r}")
        if not isinstance(checkpoint, CheckpointStrategy):
            raise TypeError(f"checkpoint must be a CheckpointStrategy, got {checkpoint!r}")
        if not isinstance(lease, int | float) or lease <= 0:
            raise ValueError(f"lease must be a number of seconds > 0, got {lease!r}")
        self.name = name
        self._own_clock = clock is None
        self.clock: Clock = clock if clock is not None else RealClock(f"actorflow-clock-{name}")
        self.events = EventBus(f"actorflow-events-{name}")
        self.nodes = NodePool(self.clock)
        self.owner = new_owner_id()
        self.checkpoint = checkpoint
        self.lease = float(lease)
        self._store = store
        self._own_store = False
        self.registry = Registry()
        self._workflows: dict[str, Workflow[Any, Any]] = {}
        for workflow in workflows:
            self.register_workflow(workflow)
        self._lock = threading.Lock()
        self._closed = False
        self._actors: list[pykka.ActorRef[Any]] = []
        self._named: dict[str, pykka.ActorRef[Any]] = {}
        self._runs: dict[str, RunHandle[Any]] = {}
        self._coordinators: dict[str, pykka.ActorRef[RunCoordinator]] = {}
        self.cluster: Cluster | None = None
        self.locks_on = locks_on or name
        self._lock_manager: pykka.ActorRef[LockManager] | None = None
        try:
            if listen is not None or join:
                self._start_cluster(listen, join, keys, plaintext, transport)
            if recover:
                self.recover()
        except BaseException:
            self.shutdown()  # a constructor that fails leaves no thread behind
            raise

    def _start_cluster(
        self,
        listen: str | None,
        join: Sequence[str],
        keys: str | os.PathLike[str] | None,
        plaintext: bool,
        settings: TransportSettings | None,
    ) -> None:
        security = load_security(keys, self.name) if keys is not None else None
        cluster = Cluster(
            self.name,
            listen=listen,
            security=security,
            plaintext=plaintext,
            settings=settings or TransportSettings(),
            bus=self.events,
            registry=self.registry,
            pool=self.nodes,
            named=self._named_ref,
            coordinator=self._coordinator_ref,
            coordinators=self._live_coordinators,
            spawn=self.spawn,
            lock_manager=self._local_lock_manager,
            stats=lambda: self.stats().to_wire(),
            control=self.control,
        )
        try:
            cluster.start(join)
        except BaseException:
            cluster.close()
            raise
        self.cluster = cluster

    @property
    def address(self) -> str | None:
        """The endpoint this node listens on (None when it is not a listening member)."""
        return self.cluster.address if self.cluster is not None else None

    def members(self) -> dict[str, str]:
        """Cluster members and their status (``up``/``down``/``left``); just this node alone."""
        if self.cluster is None:
            return {self.name: "up"}
        return {name: m.status for name, m in self.cluster.transport.members().items()}

    def register_task(self, fn: Callable[[Any], Any], name: str | None = None) -> str:
        """Let peers run ``fn`` as a step here, by ``module:qualname`` (or ``name``)."""
        return self.registry.register_task(fn, name)

    def register_actor(self, cls: type[pykka.Actor], name: str | None = None) -> str:
        """Let peers spawn ``cls`` here with ``spawn_on``, by ``module:qualname`` (or ``name``)."""
        return self.registry.register_actor(cls, name)

    def _local_lock_manager(self) -> pykka.ActorRef[LockManager]:
        with self._lock:
            if self._lock_manager is None:
                self._check_open("serve locks")
                self._lock_manager = LockManager.start(self.clock)
                self._actors.append(self._lock_manager)
            return self._lock_manager

    def _lock_client(self) -> LockClient:
        if self.locks_on == self.name:
            return LockClient(local=self._local_lock_manager, node=self.name, transport=None)
        if self.cluster is None:
            raise NodeDown(f"locks_on={self.locks_on!r}, but this system is not in a cluster")
        return LockClient(local=None, node=self.locks_on, transport=self.cluster.transport)

    def lock(self, name: str, *, lease: float = 30.0) -> Lock:
        """A handle on the distributed lock ``name`` (served on ``locks_on``).

        ``with system.lock("db", lease=10) as held: ... held.token`` holds it
        while the block runs; pass ``held.token`` to the resource you protect
        so it can refuse a stale holder (fencing).
        """
        self._check_open("lock")
        return Lock(self._lock_client(), name, lease=lease, owner=self.owner)

    def _named_ref(self, path: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            return self._named.get(path)

    def _coordinator_ref(self, run_id: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            return self._coordinators.get(run_id)

    def _live_coordinators(self) -> list[pykka.ActorRef[Any]]:
        with self._lock:
            return list(self._coordinators.values())

    @property
    def store(self) -> CheckpointStore:
        """The checkpoint store (the default SQLite file is opened on first use)."""
        if self._store is None:
            self._store = SQLiteStore(clock=self.clock)
            self._own_store = True
        return self._store

    def register_workflow(self, workflow: Workflow[Any, Any]) -> None:
        """Let ``resume``/``recover`` find ``workflow`` by its name (``wf.named(...)``)."""
        if not isinstance(workflow, Workflow):
            raise TypeError(f"register_workflow needs a Workflow, got {workflow!r}")
        self._workflows[workflow.name] = workflow
        for step in tasks_of(workflow):
            with contextlib.suppress(CompositionError):  # lambdas can only run locally
                self.registry.register_task(step)

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> ActorSystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise SystemShutDown(f"cannot {what}: actor system {self.name!r} is shut down")

    # -- actors ------------------------------------------------------------------------

    def spawn(
        self, actor_class: type[A], *args: Any, name: str | None = None, **kwargs: Any
    ) -> pykka.ActorRef[A]:
        """Start ``actor_class(*args, **kwargs)``; it is stopped at shutdown.

        With ``name``, the actor is reachable at ``<node>/<name>`` through
        ``ref`` from this and every other node of the cluster.
        """
        with self._lock:
            self._check_open("spawn")
            if not (isinstance(actor_class, type) and issubclass(actor_class, pykka.Actor)):
                raise TypeError(
                    f"spawn(actor_class) needs a pykka Actor class, got {actor_class!r}"
                )
            if name is not None:
                if not isinstance(name, str) or not name or name.startswith("$"):
                    raise ValueError(
                        f"spawn(name) must be a non-empty path not starting with '$', got {name!r}"
                    )
                old = self._named.get(name)
                if old is not None and old.is_alive():
                    raise ValueError(f"an actor named {name!r} already runs on {self.name}")
            ref = actor_class.start(*args, **kwargs)
            self._actors.append(ref)
            if name is not None:
                self._named[name] = ref
            return ref

    def ref(self, address: str | Address) -> Ref:
        """A handle on the actor at ``node/path``, local or remote (tell, ask)."""
        target = address if isinstance(address, Address) else Address.parse(address)
        transport = self.cluster.transport if self.cluster is not None else None
        if transport is None and target.node != self.name:
            raise NodeDown(
                f"{target}: node {target.node!r} is unknown (this system is not in a cluster)"
            )
        return Ref(target, local=lambda: self._named_ref(target.path), transport=transport)

    def spawn_on(
        self,
        node: str,
        actor_class: type[pykka.Actor] | str,
        *args: Any,
        name: str,
        timeout: float = 5.0,
    ) -> Ref:
        """Start a registered actor class on ``node`` (by class or registered name).

        Raises:
            ActorNotFound: the class is not registered on that node.
            NodeDown / AskTimeout: the node is unreachable or did not answer.
        """
        class_name = actor_class if isinstance(actor_class, str) else qualified_name(actor_class)
        if node == self.name:
            cls = self.registry.actor(class_name, node=self.name)
            self.spawn(cls, *args, name=name)
            return self.ref(Address(self.name, name))
        if self.cluster is None:
            raise NodeDown(f"node {node!r} is unknown (this system is not in a cluster)")
        future = self.cluster.transport.ask(
            Address(node, "$system"),
            {"op": "spawn", "class": class_name, "args": list(args), "name": name},
            timeout=timeout,
        )
        return self.ref(future.result(timeout + 1.0))

    def supervise(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: RestartIntensity | None = None,
    ) -> pykka.ActorRef[Supervisor]:
        """Start a ``Supervisor`` over ``children`` on this system's clock."""
        return self.spawn(
            Supervisor, children, strategy=strategy, intensity=intensity, clock=self.clock
        )

    # -- workflows ---------------------------------------------------------------------

    def run(
        self,
        workflow: Workflow[Ctx, Out],
        ctx: Ctx,
        *,
        run_id: str | None = None,
        observers: Iterable[WorkflowObserver] = (),
    ) -> RunHandle[Out]:
        """Start ``workflow`` on ``ctx``; returns at once with a handle to the run.

        Raises:
            PersistenceError: the run checkpoints and ``ctx`` cannot be encoded
                (the message names the field and its type), or the store failed.
        """
        if not isinstance(workflow, Workflow):
            raise TypeError(f"run(workflow) needs a Workflow, got {workflow!r}")
        run_id = run_id or uuid.uuid4().hex[:12]
        self._check_open("run a workflow")
        self._check_not_running(run_id)  # before claiming: a claim would fence the live run off
        recorder = None
        if persists(workflow, self.checkpoint):
            initial = RunRecorder.encode_context(run_id, ctx)
            epoch = self.store.claim(run_id, owner=self.owner, lease=self.lease)
            recorder = self._recorder(
                run_id, workflow, epoch, initial=initial, created_at=self.clock.wall()
            )
        return self._start_recorded(run_id, workflow, ctx, observers, recorder, None)

    def _check_not_running(self, run_id: str) -> None:
        with self._lock:
            handle = self._runs.get(run_id)
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
    ) -> RunHandle[Any]:
        """Write the run's first checkpoint and start it; give the claim back if that fails."""
        try:
            if recorder is not None:
                recorder.start()
            return self._start(
                run_id, workflow, ctx, observers=observers, recorder=recorder, replay=replay
            )
        except BaseException:
            if recorder is not None:
                with contextlib.suppress(PersistenceError):
                    recorder.release()
            raise

    def resume(
        self,
        run_id: str,
        workflow: Workflow[Any, Any] | None = None,
        *,
        force: bool = False,
        observers: Iterable[WorkflowObserver] = (),
    ) -> RunHandle[Any]:
        """Continue run ``run_id`` from its last checkpoint, in this process.

        Steps recorded completed are not run again. ``workflow`` defaults to
        the registered workflow of the recorded name.

        Raises:
            PersistenceError: no such run, its checkpoint is unreadable, no
                workflow of that name is known, or the workflow's structure
                changed since the run started (``force=True`` resumes anyway).
            RunBusy: another live process owns the run (``force=True`` takes it
                over; the old owner's further writes are then refused).
        """
        return self._resume(
            run_id, workflow, claim_force=force, structure_force=force, observers=observers
        )

    def _resume(
        self,
        run_id: str,
        workflow: Workflow[Any, Any] | None,
        *,
        claim_force: bool,
        structure_force: bool,
        observers: Iterable[WorkflowObserver] = (),
    ) -> RunHandle[Any]:
        self._check_open("resume a run")
        checkpoint = self.store.load(run_id)
        workflow = workflow or self._workflows.get(checkpoint.workflow)
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
        self._check_not_running(run_id)
        epoch = self._claim_for_resume(run_id, claim_force)
        recorder = self._recorder(
            run_id,
            workflow,
            epoch,
            initial=checkpoint.context,
            created_at=checkpoint.created_at,
            records=replay.records,
        )
        return self._start_recorded(run_id, workflow, ctx, observers, recorder, replay)

    def _claim_for_resume(self, run_id: str, force: bool) -> int:
        try:
            return self.store.claim(run_id, owner=self.owner, lease=self.lease, force=force)
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
            return self.store.claim(run_id, owner=self.owner, lease=self.lease)

    def recover(self) -> list[RunHandle[Any]]:
        """Resume every unfinished run whose owner is gone; returns their handles.

        A run that another process recovers at the same time is skipped (only
        one of them claims it). A run whose checkpoint is unreadable, or whose
        workflow's structure changed, is skipped with an error in the log: it
        is never restarted from scratch; fix it and ``resume`` it by hand.
        """
        handles = []
        now = self.clock.wall()
        for summary in self.store.list():
            if summary.state not in (str(NodeState.RUNNING), str(NodeState.PENDING)):
                continue
            lease_live = summary.lease_until is not None and summary.lease_until > now
            if lease_live and not owner_is_dead(summary.owner):
                continue
            if summary.workflow not in self._workflows:
                log.warning(
                    "run %s: cannot recover, workflow %r is not registered",
                    summary.run_id,
                    summary.workflow,
                )
                continue
            # Not a forced claim: two processes recovering at once must not both take the
            # run (the owner is gone, so an unforced claim succeeds for the first of them).
            try:
                handles.append(
                    self._resume(summary.run_id, None, claim_force=False, structure_force=False)
                )
            except RunBusy:
                log.info("run %s: another process recovered it first", summary.run_id)
            except PersistenceError as exc:
                log.error("run %s: not recovered: %s", summary.run_id, exc)
        return handles

    def _recorder(
        self,
        run_id: str,
        workflow: Workflow[Any, Any],
        epoch: int,
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
            strategy=self.checkpoint,
            clock=self.clock,
            initial_context=initial,
            created_at=created_at,
            records=records,
        )

    def _start(
        self,
        run_id: str,
        workflow: Workflow[Any, Any],
        ctx: Any,
        *,
        observers: Iterable[WorkflowObserver],
        recorder: RunRecorder | None,
        replay: Replay | None,
    ) -> RunHandle[Any]:
        with self._lock:
            self._check_open("run a workflow")
            if run_id in self._runs and not self._runs[run_id].done():
                raise ValueError(f"run id {run_id!r} is already running in this process")
            steps = StepLog(self.name)
            handle: RunHandle[Any] = RunHandle(
                run_id,
                cancel=lambda: self._cancel(run_id, "canceled by caller"),
                steps=steps,
                pause=lambda paused: self._pause(run_id, paused),
            )
            self._runs[run_id] = handle
            self._coordinators[run_id] = RunCoordinator.start(
                run_id,
                workflow,
                ctx,
                handle=handle,
                steps=steps,
                bus=self.events,
                clock=self.clock,
                on_finished=self._run_finished,
                node_name=self.name,
                observers=tuple(observers),
                recorder=recorder,
                replay=replay,
                lease=self.lease,
                pool=self.nodes,
                cluster=self.cluster,
                locks=self._lock_client(),
            )
            return handle

    def runs(self) -> list[RunSummary]:
        """Every run this system knows: those in the store, then live unrecorded ones."""
        summaries = list(self._store.list()) if self._store is not None else []
        known = {s.run_id for s in summaries}
        with self._lock:
            handles = [h for h in self._runs.values() if h.id not in known]
        for handle in handles:
            steps = handle.steps()
            summaries.append(
                RunSummary(
                    run_id=handle.id,
                    workflow="",
                    state=str(handle.state),
                    epoch=0,
                    owner=self.owner,
                    lease_until=None,
                    created_at=0.0,
                    updated_at=0.0,
                    steps_total=len(steps),
                    steps_completed=sum(1 for st in steps if st.state is NodeState.COMPLETED),
                    has_checkpoint=False,
                )
            )
        return summaries

    def handle(self, run_id: str) -> RunHandle[Any]:
        """The handle of a run started or resumed by this system (KeyError if none)."""
        with self._lock:
            return self._runs[run_id]

    def _cancel(self, run_id: str, reason: str) -> None:
        with self._lock:
            ref = self._coordinators.get(run_id)
        if ref is not None:
            cancel_run(ref, reason)

    def _pause(self, run_id: str, paused: bool) -> None:
        with self._lock:
            ref = self._coordinators.get(run_id)
        if ref is not None:
            pause_run(ref, paused)

    def _run_finished(self, run_id: str) -> None:
        with self._lock:
            self._coordinators.pop(run_id, None)

    # -- shutdown ----------------------------------------------------------------------

    def stats(self) -> SystemStats:
        """A frozen snapshot: members, runs, actors, node pool, transport counters."""
        with self._lock:
            handles = list(self._runs.values())
            actors = sum(1 for ref in self._actors if ref.is_alive())
        runs = [
            RunStats(
                h.id,
                str(h.state),
                h.paused,
                len(h.steps()),
                sum(1 for step in h.steps() if step.state is NodeState.COMPLETED),
            )
            for h in handles
        ]
        members, ages = self.members(), {}
        frames_in = frames_out = asks = hosted = 0
        dropped: dict[str, int] = {}
        if self.cluster is not None:
            transport = self.cluster.transport.stats()
            now = time.monotonic()
            ages = {
                name: round(now - peer.last_heartbeat, 3)
                for name, peer in transport.peers.items()
                if peer.last_heartbeat is not None
            }
            frames_in, frames_out = transport.frames_in, transport.frames_out
            dropped, asks = dict(transport.frames_dropped), transport.in_flight_asks
            hosted = self.cluster.host.in_flight()
        return SystemStats(
            node=self.name,
            address=self.address,
            members=members,
            heartbeat_age=ages,
            runs=runs,
            actors=actors,
            node_actors_idle=self.nodes.idle(),
            node_actors_spawned=self.nodes.spawned,
            node_actors_reused=self.nodes.reused,
            steps_hosted=hosted,
            frames_in=frames_in,
            frames_out=frames_out,
            frames_dropped=dropped,
            in_flight_asks=asks,
        )

    def control(self, run_id: str, action: str) -> bool:
        """``cancel``, ``pause`` or ``unpause`` a run this system coordinates; False if none."""
        if action not in ("cancel", "pause", "unpause"):
            raise ValueError(f"action must be cancel, pause or unpause, got {action!r}")
        with self._lock:
            handle = self._runs.get(run_id)
        if handle is None or handle.done():
            return False
        if action == "cancel":
            handle.cancel()
        else:
            handle.pause() if action == "pause" else handle.unpause()
        return True

    def leave(self, drain_timeout: float = 10.0) -> int:
        """Leave the cluster gracefully: finish in-flight steps (bounded), tell the peers.

        Returns how many steps were still running when ``drain_timeout`` passed
        (their coordinators re-place them when they see this node leave).
        """
        if self.cluster is None:
            return 0
        return self.cluster.leave(drain_timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel running runs, stop every actor (last spawned first), stop the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            coordinators = list(self._coordinators.values())
            actors = list(reversed(self._actors))
        for ref in coordinators:
            cancel_run(ref, "actor system shutting down")
        for ref in actors:
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.error("actor %s did not stop within %.1fs", ref, timeout)
        for handle in list(self._runs.values()):
            handle.wait(timeout)
        self.nodes.close(timeout)
        if self.cluster is not None:
            self.cluster.close(timeout)
        self.events.close(timeout)
        if self._own_store and self._store is not None:
            self._store.close()
        if self._own_clock and isinstance(self.clock, RealClock):
            self.clock.close(timeout)
