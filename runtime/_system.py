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
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import pykka

from actors import (
    Clock,
    CompositionError,
    EventBus,
    LockManager,
    NodePool,
    RealClock,
    WorkflowObserver,
)
from runtime._adoption import Adopter, recover_runs
from runtime._death_watch import DeathWatch
from runtime._hosting import ActorHost
from runtime._links import SystemLinks
from runtime._metrics import Metrics
from runtime._runs import Runs, RunSettings
from runtime._singletons import Singletons
from runtime._stats import SystemStats, transport_figures
from runtime._submissions import Submissions
from runtime._system_actors import ActorHosting
from runtime._watches import WatchService
from runtime.cluster import (
    Cluster,
    ClusterSettings,
    Lock,
    LockClient,
    Registry,
    StoreLockClient,
)
from runtime.engine import RunHandle
from runtime.store import (
    FINISHED_STATES,
    AdoptingStore,
    CheckpointStore,
    PostgresStore,
    RunSummary,
    StoreSpec,
    new_owner_id,
    open_store,
)
from runtime.workflow import CheckpointStrategy, Workflow, tasks_of
from transport import NodeDown, TransportSettings, load_security

__all__ = ["ActorSystem"]

log = logging.getLogger(__name__)

Ctx = TypeVar("Ctx")
Out = TypeVar("Out")
A = TypeVar("A", bound=pykka.Actor)


def _check_options(name: Any, checkpoint: Any, lease: Any, max_running_steps: Any) -> None:
    """Refuse bad ``ActorSystem`` arguments at once, naming the argument and the value."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"ActorSystem(name) must be a non-empty str without '/', got {name!r}")
    if not isinstance(checkpoint, CheckpointStrategy):
        raise TypeError(f"checkpoint must be a CheckpointStrategy, got {checkpoint!r}")
    if not isinstance(lease, int | float) or lease <= 0:
        raise ValueError(f"lease must be a number of seconds > 0, got {lease!r}")
    if max_running_steps is not None and (
        isinstance(max_running_steps, bool)
        or not isinstance(max_running_steps, int)
        or max_running_steps < 1
    ):
        raise ValueError(
            f"max_running_steps must be an int >= 1 or None, got {max_running_steps!r}"
        )


class ActorSystem(ActorHosting):
    """A local actor system: spawn actors, supervise them, run and resume workflows.

    Args:
        name: this node's name (the first part of every address it hosts).
        clock: time source for backoffs, timeouts, leases and intensity windows
            (``ManualClock`` in tests); a ``RealClock`` by default.
        store: where checkpoints go: a store, a ``postgresql://`` URL (a
            ``PostgresStore``, shared by hosts) or a SQLite file path. Default: a
            ``SQLiteStore`` at ``./.actorflow/state.db``, opened only when a run
            first checkpoints. A store given by URL or path is closed on shutdown.
        checkpoint: the default strategy of every run (``NONE`` unless set);
            ``wf.checkpoint(strategy)`` overrides it for part of a workflow.
        workflows: workflows that ``resume`` and ``recover`` may look up by name.
        recover: on start, resume every unfinished run in the store whose owner
            is gone (its lease expired, or its process on this host is dead).
            With a store shared by hosts (PostgreSQL) the system keeps adopting
            such runs every ``adopt_interval`` seconds (see ``runtime._adoption``).
        adopt_interval: seconds between adoption scans (default: a quarter of ``lease``).
        lease: seconds a run's ownership lasts without renewal (renewed every third).
        listen: ZeroMQ endpoint this node binds (``tcp://127.0.0.1:0`` picks a port);
            with ``listen`` or ``join`` the system is a cluster member.
        join: seed endpoints of nodes already in the cluster.
        join_timeout: seconds to keep trying the seeds (hellos repeated, connections
            retried: a node may start before its seed) before giving up with
            ``NodeDown``; a seed refusing this node's CURVE key fails at once
            (``JoinRefused``). Either error says what each seed's connection showed.
        keys: a keys directory (``actorflow keys generate``): CURVE encryption and
            the allowlist of node public keys. Without it the node refuses to start
            unless ``plaintext=True`` and every endpoint is loopback.
        plaintext: explicitly allow unencrypted TCP on loopback (tests, demos).
        transport: timing and bounds of the transport (heartbeats, failure detector).
        locks_on: the node whose ``LockManager`` serves ``lock()`` and
            ``wf.locked()``; this node when omitted. Every member of a cluster
            should name the same node. Omitted with a PostgreSQL store, the
            locks live in the store (``runtime.cluster._store_locks``).
        max_running_steps: how many step attempts of one run may be in flight
            at once (here or on workers); the rest wait, in the order they
            became ready. Bounds threads and load under a wide ``parallel``.
            ``None``: no bound.
        keep_finished: how many finished runs' handles stay in memory (the
            newest); older ones are forgotten here (``handle(run_id)`` raises
            ``KeyError``) but their checkpoints stay in the store. Bounds the
            memory of a system that runs for months.
        metrics: ``HOST:PORT`` to serve Prometheus metrics on (``/metrics``;
            port 0 picks a free one, see ``metrics_address``). Binds exactly the
            address given, without authentication: keep it on loopback or a
            private network. Needs the ``metrics`` extra (``prometheus_client``).
        setup: called with this system before it listens or joins: what it
            registers there (tasks, actors, workflows) is in its first hello, so no
            peer ever sees it up without them (``actorflow node`` runs each
            ``--app``'s ``register(system)`` here).
    """

    def __init__(
        self,
        name: str = "local",
        *,
        clock: Clock | None = None,
        store: StoreSpec | None = None,
        checkpoint: CheckpointStrategy = CheckpointStrategy.NONE,
        workflows: Iterable[Workflow[Any, Any]] = (),
        recover: bool = False,
        lease: float = 10.0,
        listen: str | None = None,
        join: Sequence[str] = (),
        join_timeout: float = 10.0,
        keys: str | os.PathLike[str] | None = None,
        plaintext: bool = False,
        transport: TransportSettings | None = None,
        locks_on: str | None = None,
        max_running_steps: int | None = 256,
        keep_finished: int = 1000,
        metrics: str | None = None,
        adopt_interval: float | None = None,
        setup: Callable[[ActorSystem], None] | None = None,
    ) -> None:
        _check_options(name, checkpoint, lease, max_running_steps)
        if (
            isinstance(keep_finished, bool)
            or not isinstance(keep_finished, int)
            or keep_finished < 0
        ):
            raise ValueError(f"keep_finished must be an int >= 0, got {keep_finished!r}")
        self.name = name
        self._own_clock = clock is None
        self.clock: Clock = clock if clock is not None else RealClock(f"actorflow-clock-{name}")
        # A URL or path is opened first: a bad one fails here, before any thread starts.
        opened = None if store is None else open_store(store, clock=self.clock)
        self.events = EventBus(f"actorflow-events-{name}")
        self.nodes = NodePool(self.clock)
        self.owner = new_owner_id()
        self.checkpoint = checkpoint
        self.lease = float(lease)
        self.cluster: Cluster | None = None
        self._links = SystemLinks(self)  # what the runs and the cluster call back into
        self._runs = Runs(
            name,
            clock=self.clock,
            events=self.events,
            nodes=self.nodes,
            store=opened,
            own_store=opened is not store,
            settings=RunSettings(
                owner=self.owner,
                lease=self.lease,
                checkpoint=checkpoint,
                max_running_steps=max_running_steps,
                keep_finished=keep_finished,
            ),
            links=self._links,
        )
        self.registry = Registry()
        self._submissions = Submissions(self)
        for workflow in workflows:
            self.register_workflow(workflow)
        self._lock = threading.Lock()
        self._closed = False
        self._actors: dict[str, pykka.ActorRef[Any]] = {}
        self._named: dict[str, pykka.ActorRef[Any]] = {}
        self._watches = WatchService(name, lambda: self.cluster)
        self._host = ActorHost(self, self._watches)
        self._death_watch = DeathWatch(self, self._watches)
        self._singletons = Singletons(self)
        self.locks_on = locks_on or name
        self._locks_in_store = locks_on is None  # with a PostgreSQL store
        self._store_locks: StoreLockClient | None = None
        self._lock_manager: pykka.ActorRef[LockManager] | None = None
        self._metrics: Metrics | None = None
        self._adopter: Adopter | None = None
        try:
            if metrics is not None:
                self._start_metrics(metrics)
            if setup is not None:
                setup(self)
            if listen is not None or join:
                security = load_security(keys, name) if keys is not None else None
                settings = ClusterSettings(
                    listen=listen,
                    security=security,
                    plaintext=plaintext,
                    transport=transport or TransportSettings(),
                )
                self._start_cluster(settings, join, join_timeout)
            if recover:
                self.recover()
            if recover and isinstance(self.store, AdoptingStore):
                interval = adopt_interval if adopt_interval is not None else self.lease / 4
                self._adopter = Adopter(self._runs, interval=interval, name=name)
        except BaseException:
            self.shutdown()  # a constructor that fails leaves no thread behind
            raise

    def _start_cluster(
        self, settings: ClusterSettings, join: Sequence[str], join_timeout: float
    ) -> None:
        cluster = Cluster(
            self.name,
            settings=settings,
            bus=self.events,
            registry=self.registry,
            pool=self.nodes,
            local=self._links,
            hosted=self._metrics,
        )
        cluster.transport.subscribe(self._watches.on_member)
        cluster.transport.subscribe(self._host.on_member)
        try:
            cluster.start(join, timeout=join_timeout)
        except BaseException:
            cluster.close()
            raise
        self.cluster = cluster

    def _start_metrics(self, address: str) -> None:
        self._metrics = served = Metrics(self, address)
        self._runs.on_start = served.run_started
        self._runs.on_checkpoint_write = served.checkpoint_written
        self.events.subscribe(served)

    @property
    def metrics_address(self) -> str | None:
        """``HOST:PORT`` the metrics endpoint is bound to (None without ``metrics``)."""
        return self._metrics.address if self._metrics is not None else None

    @property
    def address(self) -> str | None:
        """The endpoint this node listens on (None when it is not a listening member)."""
        return self.cluster.address if self.cluster is not None else None

    def members(self) -> dict[str, str]:
        """Cluster members and their status (``up``/``down``/``left``); just this node alone."""
        if self.cluster is None:
            return {self.name: "up"}
        return {name: m.status for name, m in self.cluster.transport.members().items()}

    def reload_keys(self) -> tuple[list[str], list[str]]:
        """Re-read the keys directory (the allowlist) now: (added or changed, removed) names.

        Also done by itself when the directory's key files change, and by
        ``actorflow node`` on SIGHUP. Nothing to do without ``keys``.
        """
        if self.cluster is None:
            return [], []
        return self.cluster.reload_keys()

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
                self._actors[self._lock_manager.actor_urn] = self._lock_manager
            return self._lock_manager

    def _lock_client(self) -> LockClient:
        store = self._runs.opened_store
        if self._locks_in_store and isinstance(store, PostgresStore):
            with self._lock:
                self._check_open("lock")
                if self._store_locks is None:
                    self._store_locks = StoreLockClient(store)
                return self._store_locks
        if self.locks_on == self.name:
            return LockClient(local=self._local_lock_manager, node=self.name, transport=None)
        if self.cluster is None:
            raise NodeDown(f"locks_on={self.locks_on!r}, but this system is not in a cluster")
        return LockClient(local=None, node=self.locks_on, transport=self.cluster.transport)

    def lock(self, name: str, *, lease: float = 30.0) -> Lock:
        """A handle on the distributed lock ``name`` (in a PostgreSQL store, or on ``locks_on``).

        ``with system.lock("db", lease=10) as held: ... held.token`` holds it
        while the block runs; pass ``held.token`` to the resource you protect
        so it can refuse a stale holder (fencing).
        """
        self._check_open("lock")
        return Lock(self._lock_client(), name, lease=lease, owner=self.owner)

    def _coordinator_ref(self, run_id: str) -> pykka.ActorRef[Any] | None:
        return self._runs.coordinator(run_id)

    @property
    def store(self) -> CheckpointStore:
        """The checkpoint store (the default SQLite file is opened on first use)."""
        return self._runs.store

    def register_workflow(
        self, workflow: Workflow[Any, Any], *, context: Callable[[Any], Any] | None = None
    ) -> None:
        """Let ``resume``/``recover`` and clients' ``submit`` find ``workflow`` by its name
        (``wf.named(...)``). ``context`` builds a submitted run's context from the value
        the client sent (e.g. a JSON object from ``actorflow submit --ctx``)."""
        if not isinstance(workflow, Workflow):
            raise TypeError(f"register_workflow needs a Workflow, got {workflow!r}")
        if context is not None and not callable(context):
            raise TypeError(f"register_workflow(context=) must be callable, got {context!r}")
        self._runs.workflows[workflow.name] = workflow
        if context is not None:
            self._submissions.contexts[workflow.name] = context
        for step in tasks_of(workflow):
            with contextlib.suppress(CompositionError):  # lambdas can only run locally
                self.registry.register_task(step)

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> ActorSystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

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
        return self._runs.run(workflow, ctx, run_id=run_id, observers=observers)

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
            PersistenceError: no such run, it is already Completed, its
                checkpoint is unreadable, no workflow of that name is known, or
                the workflow's structure changed since the run started
                (``force=True`` resumes anyway).
            RunBusy: another live process owns the run (``force=True`` takes it
                over; the old owner's further writes are then refused).
        """
        return self._runs.resume(
            run_id, workflow, claim_force=force, structure_force=force, observers=observers
        )

    def recover(self) -> list[RunHandle[Any]]:
        """Resume every unfinished run whose owner is gone; returns their handles.

        A run that another process recovers at the same time is skipped (only
        one of them claims it). A run whose checkpoint is unreadable, or whose
        workflow's structure changed, is skipped with an error in the log: it
        is never restarted from scratch; fix it and ``resume`` it by hand.
        """
        return recover_runs(self._runs, self.clock.wall())

    def runs(self) -> list[RunSummary]:
        """Every run this system knows: those in the store, then live unrecorded ones."""
        return self._runs.summaries()

    def prune(
        self,
        older_than: float,
        *,
        states: Iterable[str] = FINISHED_STATES,
        dry_run: bool = False,
    ) -> list[str]:
        """Forget runs in ``states`` (default Completed, Canceled) idle for ``older_than`` s.

        Returns the ids deleted. A run someone holds is never deleted; see
        ``actorflow prune`` for the same from the command line.
        """
        return self._runs.prune(older_than, states, dry_run=dry_run)

    def stored_result(self, run_id: str) -> Any:
        """The output of run ``run_id`` as recorded in the store, from any process.

        For a run that finished elsewhere or earlier (a live run here also has
        ``handle(run_id).result()``).

        Raises:
            PersistenceError: unknown run; not Completed (the message gives its
                state and error); or its output could not be recorded.
        """
        return self._runs.stored_result(run_id)

    def handle(self, run_id: str) -> RunHandle[Any]:
        """The handle of a run this system runs, or finished recently (else KeyError)."""
        return self._runs.handle(run_id)

    def control(self, run_id: str, action: str) -> bool:
        """``cancel``, ``pause`` or ``unpause`` a run this system coordinates; False if none."""
        return self._runs.control(run_id, action)

    # -- looking -----------------------------------------------------------------------

    def stats(self) -> SystemStats:
        """A frozen snapshot: members, runs, actors, node pool, transport counters."""
        with self._lock:
            actors = sum(1 for ref in self._actors.values() if ref.is_alive())
        transport = self.cluster.transport.stats() if self.cluster is not None else None
        hosted = self.cluster.host.in_flight() if self.cluster is not None else 0
        figures = transport_figures(transport)
        if self.cluster is not None:
            suppressed = figures.setdefault("log_suppressed", {})
            for key, count in self.cluster.log_suppressed().items():
                suppressed[key] = suppressed.get(key, 0) + count
        return SystemStats(
            node=self.name,
            address=self.address,
            members=self.members(),
            runs=self._runs.stats(),
            actors=actors,
            node_actors_idle=self.nodes.idle(),
            node_actors_spawned=self.nodes.spawned,
            node_actors_reused=self.nodes.reused,
            steps_hosted=hosted,
            **figures,
        )

    # -- shutdown ----------------------------------------------------------------------

    def leave(self, drain_timeout: float = 10.0) -> int:
        """Leave the cluster gracefully: finish in-flight steps (bounded), tell the peers.

        Returns how many steps were still running when ``drain_timeout`` passed
        (their coordinators re-place them when they see this node leave).
        """
        if self.cluster is None:
            return 0
        return self.cluster.leave(drain_timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel running runs, stop every actor (last spawned first), stop the threads.

        A member adopting runs from a shared store (``recover=True``, PostgreSQL)
        hands its checkpointed runs off instead: another member continues them.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            actors = list(reversed(self._actors.values()))
        if self._adopter is not None:  # one of a group sharing a store: others continue its runs
            self._adopter.stop(timeout)
            self._runs.hand_off()
        self._runs.close_to_new_runs("actor system shutting down")
        self._singletons.close()
        for ref in actors:
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.error("actor %s did not stop within %.1fs", ref, timeout)
        self._runs.wait_all(timeout)
        if self._store_locks is not None:
            self._store_locks.close()
        self.nodes.close(timeout)
        if self.cluster is not None:
            self.cluster.close(timeout)
        self.events.close(timeout)
        if self._metrics is not None:
            self._metrics.close(timeout)
        self._runs.close_store()
        if self._own_clock and isinstance(self.clock, RealClock):
            self.clock.close(timeout)
