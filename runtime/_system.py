"""ActorSystem: one per process; owns the clock, the event bus, runs and actors.

It is an explicit context manager with its own bookkeeping (no process-global
singleton): everything it spawned is stopped on ``shutdown``, last spawned
first, and nothing it started outlives it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import pykka

from actors import (
    ChildSpec,
    Clock,
    EventBus,
    RealClock,
    RestartIntensity,
    Strategy,
    Supervisor,
    SystemShutDown,
    WorkflowObserver,
)
from runtime._handle import RunHandle, StepLog
from runtime._run import RunCoordinator, cancel_run
from runtime._workflow import Workflow

__all__ = ["ActorSystem"]

log = logging.getLogger(__name__)

Ctx = TypeVar("Ctx")
Out = TypeVar("Out")
A = TypeVar("A", bound=pykka.Actor)

_names = itertools.count(1)


class ActorSystem:
    """A local actor system: spawn actors, supervise them, run workflows.

    Args:
        name: this node's name (the first part of every address it hosts).
        clock: time source for backoffs, timeouts and intensity windows
            (``ManualClock`` in tests); a ``RealClock`` by default.
    """

    def __init__(self, name: str = "local", *, clock: Clock | None = None) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"ActorSystem(name) must be a non-empty str without '/', got {name!r}")
        self.name = name
        self._own_clock = clock is None
        self.clock: Clock = clock if clock is not None else RealClock(f"actorflow-clock-{name}")
        self.events = EventBus(f"actorflow-events-{name}")
        self._lock = threading.Lock()
        self._closed = False
        self._actors: list[pykka.ActorRef[Any]] = []
        self._runs: dict[str, RunHandle[Any]] = {}
        self._coordinators: dict[str, pykka.ActorRef[RunCoordinator]] = {}

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> ActorSystem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise SystemShutDown(f"cannot {what}: actor system {self.name!r} is shut down")

    # -- actors ------------------------------------------------------------------------

    def spawn(self, actor_class: type[A], *args: Any, **kwargs: Any) -> pykka.ActorRef[A]:
        """Start ``actor_class(*args, **kwargs)``; it is stopped at shutdown."""
        with self._lock:
            self._check_open("spawn")
            if not (isinstance(actor_class, type) and issubclass(actor_class, pykka.Actor)):
                raise TypeError(
                    f"spawn(actor_class) needs a pykka Actor class, got {actor_class!r}"
                )
            ref = actor_class.start(*args, **kwargs)
            self._actors.append(ref)
            return ref

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
        """Start ``workflow`` on ``ctx``; returns at once with a handle to the run."""
        if not isinstance(workflow, Workflow):
            raise TypeError(f"run(workflow) needs a Workflow, got {workflow!r}")
        run_id = run_id or uuid.uuid4().hex[:12]
        with self._lock:
            self._check_open("run a workflow")
            if run_id in self._runs and not self._runs[run_id].done():
                raise ValueError(f"run id {run_id!r} is already running")
            steps = StepLog(self.name)
            handle: RunHandle[Out] = RunHandle(
                run_id, cancel=lambda: self._cancel(run_id, "canceled by caller"), steps=steps
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
            )
            return handle

    def runs(self) -> list[RunHandle[Any]]:
        """Handles of the runs this system started, oldest first."""
        with self._lock:
            return list(self._runs.values())

    def _cancel(self, run_id: str, reason: str) -> None:
        with self._lock:
            ref = self._coordinators.get(run_id)
        if ref is not None:
            cancel_run(ref, reason)

    def _run_finished(self, run_id: str) -> None:
        with self._lock:
            self._coordinators.pop(run_id, None)

    # -- shutdown ----------------------------------------------------------------------

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
        self.events.close(timeout)
        if self._own_clock and isinstance(self.clock, RealClock):
            self.clock.close(timeout)
