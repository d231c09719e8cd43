"""StepHost: the worker side of remote steps — runs steps that coordinators send here.

A coordinator sends ``$system`` a ``RunStep``; the host looks the
task up in this node's registry (never imports a name from the wire), binds a
pooled ``NodeActor`` to it, and sends two messages back to the coordinator's
``$run/<run_id>`` mailbox: a ``StepStarted`` as the attempt starts and a
``StepOutcome`` as it ends, each carrying the node's state changes before it.
A step that failed stays bound to its actor until the coordinator retries it
(the same node goes Failed -> Running) or ends the run (``end_run``).

Requests are handled on the transport's I/O thread when nothing else waits
for the dispatch thread (``Cluster.deliver_nowait``): this does no more than
a registry look-up and two mailbox puts; the context is decoded by the node
actor itself (``Start.decode``), on its own thread.

Draining: after ``drain()`` starts, new steps are refused at once (an outcome
``refused`` with ``NodeDown``, so the coordinator re-places them) while
in-flight ones finish.

A ``HostedSteps`` observer (the node's metrics) is told of each attempt that
starts here and of each that ends, so a worker counts what it runs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

from actors import (
    NodeActor,
    NodePool,
    NodeState,
    NotifyingEvent,
    Start,
    StateChanged,
    StepResult,
)
from actors import events as ev
from runtime.cluster._messages import CancelStep, EndRun, RunStep, StepOutcome, StepStarted
from runtime.cluster._paths import run_path
from runtime.cluster._registry import Registry
from runtime.cluster._wire import error_names, remote_error
from runtime.store import decode_value, encode_value
from transport import Address, NodeDown, RateLimitedLog, Transport, WorkflowError

__all__ = ["HostedSteps", "StepHost"]

log = logging.getLogger(__name__)


class HostedSteps(Protocol):
    """Told of the attempts this node runs for coordinators (any thread; must not raise)."""

    def hosted_started(self, coordinator: str, step: str) -> None: ...

    def hosted_ended(self, coordinator: str, step: str, state: NodeState, seconds: float) -> None:
        """The attempt ended (``Completed``, ``Failed`` or ``Canceled``) after ``seconds``."""
        ...


@dataclass(eq=False)
class _Hosted:
    """One step bound to a node actor here; its node's ``emit`` and ``report`` callbacks.

    The node's transitions wait in ``changes`` (node thread only) and travel
    inside the next message to the coordinator: ``Running`` with the
    ``StepStarted``, the final one with the result. Two messages an attempt.
    """

    host: StepHost
    coordinator: str
    run: str
    key: str
    inc: int
    attempt: int  # the coordinator's attempt number, echoed in events and the result
    cancel_event: NotifyingEvent
    ref: pykka.ActorRef[NodeActor] | None = None
    state: NodeState = NodeState.RUNNING
    changes: list[StateChanged] = field(default_factory=list)

    def emit(self, event: ev.Event) -> None:
        if isinstance(event, StateChanged):
            self.changes.append(event)
        elif isinstance(event, ev.Started):
            changes, self.changes = tuple(self.changes), []
            self.host.send_started(
                self,
                StepStarted(self.run, self.key, self.attempt, event.node, event.timestamp, changes),
            )

    def report(self, result: StepResult) -> None:
        changes, self.changes = tuple(self.changes), []
        self.host.finished(self, result, changes)


class _ContextDecoder:
    """Decodes a remote step's context on its node's thread (``Start.decode``)."""

    __slots__ = ("_what",)

    def __init__(self, run_id: str, key: str) -> None:
        self._what = f"run {run_id} step {key!r} context"

    def __call__(self, data: Any) -> Any:
        return decode_value(data, what=self._what)


class StepHost:
    """Runs remote steps on this node. Thread-safe (called from the I/O or dispatch thread)."""

    def __init__(
        self,
        node: str,
        transport: Transport,
        registry: Registry,
        pool: NodePool,
        observer: HostedSteps | None = None,
    ) -> None:
        self._node = node
        self._observer = observer
        self._transport = transport
        self._registry = registry
        self._pool = pool
        self._log = RateLimitedLog(log)  # per-message warnings, one per reason every 5 s
        self._lock = threading.Condition()
        self._hosted: dict[tuple[str, str], _Hosted] = {}
        self._draining = False
        self._sending = 0  # results of finished steps not yet handed to the transport

    # -- requests from coordinators ----------------------------------------------------

    def run_step(self, coordinator: str, request: RunStep) -> None:
        """Start one attempt; its context is decoded on the node's thread, not this one."""
        run_id, key, inc, attempt = request.run, request.step, request.incarnation, request.attempt
        if self._draining:
            # Refused before it ran: the coordinator places it on another node.
            error = NodeDown(f"node {self._node} is leaving and takes no new steps")
            self._send_result(
                coordinator, run_id, key, inc, attempt, NodeState.FAILED, error=error, refused=True
            )
            return
        try:
            fn = self._registry.task(request.task, node=self._node)
        except WorkflowError as exc:
            self._send_result(coordinator, run_id, key, inc, attempt, NodeState.FAILED, error=exc)
            return
        start = Start(request.context, request.locks, _ContextDecoder(run_id, key))
        stale: _Hosted | None = None
        with self._lock:
            hosted = self._hosted.get((run_id, key))
            if hosted is not None and hosted.state is NodeState.FAILED and hosted.inc == inc:
                # A retry: the same node goes Failed -> Running.
                hosted.state, hosted.attempt = NodeState.RUNNING, attempt
                retried = hosted.ref
            else:
                # An older incarnation of this step (failed here, then retried
                # elsewhere and now back) is replaced: free its actor below.
                stale, retried = hosted, None
                hosted = _Hosted(self, coordinator, run_id, key, inc, attempt, NotifyingEvent())
                hosted.ref = self._pool.acquire(
                    key,
                    fn,
                    run_id=run_id,
                    emit=hosted.emit,
                    report=hosted.report,
                    cancel_event=hosted.cancel_event,
                    node=self._node,
                    start=start,
                )
                self._hosted[(run_id, key)] = hosted
        if stale is not None:
            self._free(stale)
        if retried is not None:
            retried.tell(start)
        if self._observer is not None:
            self._observer.hosted_started(coordinator, key)

    def cancel(self, request: CancelStep) -> None:
        with self._lock:
            hosted = self._hosted.get((request.run, request.step))
        if hosted is not None:
            hosted.cancel_event.set()

    def end_run(self, request: EndRun) -> None:
        """The coordinator is done with a run: free every node still bound to it."""
        with self._lock:
            keys = [k for k in self._hosted if k[0] == request.run]
            ended = [self._hosted.pop(k) for k in keys]
            self._lock.notify_all()
        for hosted in ended:
            self._free(hosted)

    def _free(self, hosted: _Hosted) -> None:
        """Give up a node no longer in the table: stop it if its task runs, else pool it."""
        hosted.cancel_event.set()
        if hosted.ref is None:
            return
        if hosted.state is NodeState.RUNNING:
            hosted.ref.stop(block=False)  # after its task returns; never reused
        else:
            self._pool.release(hosted.ref)

    # -- draining -----------------------------------------------------------------------

    def in_flight(self) -> int:
        with self._lock:
            return sum(1 for h in self._hosted.values() if h.state is NodeState.RUNNING)

    def drain(self, timeout: float) -> int:
        """Refuse new steps, wait up to ``timeout`` s for running ones; returns how many remain.

        A finished step counts as running until its result was handed to the
        transport, so the result goes out before this node's leave.
        """
        with self._lock:
            self._draining = True
            self._lock.wait_for(
                lambda: (
                    self._sending == 0
                    and not any(h.state is NodeState.RUNNING for h in self._hosted.values())
                ),
                timeout,
            )
            return sum(1 for h in self._hosted.values() if h.state is NodeState.RUNNING)

    def close(self) -> None:
        """This node stops serving: free every node still bound to a step.

        Failed steps wait here for a retry that will not come now, and steps
        still running after a drain timed out are abandoned; either would keep
        a (non-daemon) actor thread alive past shutdown.
        """
        with self._lock:
            self._draining = True
            ended = list(self._hosted.values())
            self._hosted.clear()
            self._lock.notify_all()
        for hosted in ended:
            self._free(hosted)

    # -- back to the coordinator ----------------------------------------------------------

    def send_started(self, hosted: _Hosted, started: StepStarted) -> None:
        """(Node thread) The attempt started: tell its coordinator (one message)."""
        try:
            self._transport.tell(
                Address(hosted.coordinator, run_path(hosted.run)), started.encode()
            )
        except (WorkflowError, RuntimeError) as exc:  # RuntimeError: transport closed
            self._log.warning(
                "forward",
                "cannot tell %s that step %s started: %s",
                hosted.coordinator,
                hosted.key,
                exc,
                peer=hosted.coordinator,
            )

    def log_suppressed(self) -> dict[str, int]:
        """Its per-message log lines rate-limited to DEBUG, by ``reason@peer``."""
        return self._log.suppressed()

    def finished(
        self, hosted: _Hosted, result: StepResult, changes: tuple[StateChanged, ...]
    ) -> None:
        """(Node thread) The attempt ended: its result, with the transitions before it."""
        key = (hosted.run, hosted.key)
        with self._lock:
            current = self._hosted.get(key) is hosted
            attempt = hosted.attempt if current else 0  # a replaced node's result is stale
            if current:
                hosted.state = result.state
                if result.state is not NodeState.FAILED:
                    del self._hosted[key]
                    if hosted.ref is not None:
                        self._pool.release(hosted.ref)
            self._sending += 1  # a drain waits for this result to be on its way
        if self._observer is not None:
            seconds = max(0.0, result.finished_at - result.started_at)
            self._observer.hosted_ended(hosted.coordinator, hosted.key, result.state, seconds)
        try:
            self._send_result(
                hosted.coordinator,
                hosted.run,
                hosted.key,
                hosted.inc,
                attempt,
                result.state,
                output=result.output,
                ctx=result.ctx,
                error=result.error,
                text=result.traceback,
                started=result.started_at,
                finished=result.finished_at,
                changes=changes,
            )
        finally:
            with self._lock:
                self._sending -= 1
                self._lock.notify_all()

    def _send_result(
        self,
        coordinator: str,
        run_id: str,
        key: str,
        inc: int,
        attempt: int,
        state: NodeState,
        *,
        output: Any = None,
        ctx: Any = None,
        error: BaseException | None = None,
        text: str = "",
        started: float = 0.0,
        finished: float = 0.0,
        refused: bool = False,
        changes: tuple[StateChanged, ...] = (),
    ) -> None:
        payload = None
        if state is NodeState.COMPLETED:
            try:
                payload = encode_value(
                    [output, ctx], what=f"run {run_id} step {key!r} output", root="[output, ctx]"
                )
            except WorkflowError as exc:
                state, error = NodeState.FAILED, exc
        outcome = StepOutcome(
            run_id,
            key,
            inc,
            attempt,
            state,
            payload,
            None if error is None else remote_error(error, self._node, text),
            () if error is None else tuple(error_names(error)),
            started,
            finished,
            refused,
            changes,
        )
        try:
            self._transport.tell(Address(coordinator, outcome.path), outcome.encode())
        except (WorkflowError, RuntimeError) as exc:  # RuntimeError: the transport closed
            log.error(
                "run %s step %s: result lost, coordinator %s unreachable: %s",
                run_id,
                key,
                coordinator,
                exc,
            )
