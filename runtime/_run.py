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

import contextlib
import copy
import dataclasses
import functools
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from actors import (
    Canceled,
    CancelNode,
    Clock,
    ConditionNotMet,
    EventBus,
    LockError,
    NodePool,
    NodeState,
    PermanentError,
    Start,
    StepResult,
    StepTimeout,
    TimerHandle,
    WorkflowObserver,
)
from actors import events as ev
from runtime._adaptive import LoadBook, PlacementStrategy
from runtime._checkpoint import CheckpointStrategy, Replay, RunRecorder
from runtime._handle import RunHandle, StepLog
from runtime._locks import LockClient
from runtime._merge import merge_contexts
from runtime._persist import decode_value, encode_value
from runtime._registry import qualified_name
from runtime._retry import RetryPolicy
from runtime._wire import NodeLost, RemoteReport, require, with_names
from runtime._workflow import (
    Workflow,
    _Adaptive,
    _Checkpointed,
    _Dynamic,
    _Locked,
    _Monitored,
    _Named,
    _Nested,
    _Parallel,
    _Predictive,
    _Retry,
    _Task,
    _Then,
    _When,
    monitors,
)
from transport import NodeDown, RemoteError, WorkflowError

if TYPE_CHECKING:
    from runtime._cluster import Cluster

__all__ = ["RemoteReport", "RunCoordinator", "cancel_run", "pause_run"]

log = logging.getLogger(__name__)


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
    wf: _Task  # what and on which context: enough to re-place it if its node is lost
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


def _has_wire_name(wf: _Task) -> bool:
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


class RunCoordinator(pykka.ThreadingActor):
    """Drives one run; created by ``ActorSystem.run``. Only tells are sent to it."""

    # One interpreter method per kind of workflow node (filled in below the class).
    _HANDLERS: ClassVar[dict[type, Callable[..., None]]] = {}

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
        self._tokens = itertools.count(1)
        self._incarnations = itertools.count(1)
        self._attempts: dict[str, int] = {}
        self._backing_off: set[str] = set()  # failed steps waiting for their retry timer
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

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _NodeReport):
            self._guarded(lambda: self._on_report(message))
        elif isinstance(message, _Wake):
            callback = self._wakeups.pop(message.token, None)
            if callback is not None:
                self._guarded(callback)
        elif isinstance(message, RemoteReport):
            self._guarded(lambda: self._on_remote_report(message))
        elif isinstance(message, NodeLost):
            self._guarded(lambda: self._on_node_lost(message))
        elif isinstance(message, _CancelRun):
            self._guarded(lambda: self._cancel_run(message.reason))
        elif isinstance(message, _Pause):
            self._guarded(lambda: self._set_paused(message.paused))
        else:
            log.warning("run %s: coordinator ignored unknown message %r", self.run_id, message)
        return None

    def on_stop(self) -> None:
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

    def _schedule(self, scope: _Scope, delay: float, callback: Callable[[], None]) -> None:
        token = next(self._tokens)
        self._wakeups[token] = callback
        me = self.actor_ref
        scope.timers.append(self._clock.call_later(delay, lambda: me.tell(_Wake(token))))

    def _watch(self, observers: _Observers) -> None:
        """Subscribe ``.monitored`` observers to this run's events of their steps."""
        for observer in observers:
            if any(o is observer for o in self._watched):
                continue
            self._watched.append(observer)
            self._unsubscribes.append(
                self._bus.subscribe(observer, _of_steps(self.run_id, self._monitors, observer))
            )

    # -- the interpreter -----------------------------------------------------------

    def _exec(
        self,
        wf: Workflow[Any, Any],
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        if frame.scope.canceled:
            return
        handler = self._HANDLERS.get(type(wf))
        if handler is None:
            raise TypeError(f"unknown workflow node {wf!r}")
        handler(self, wf, ctx, frame, cont)

    def _exec_plain_task(self, wf: _Task, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec_task(wf, ctx, frame, cont, None)

    def _exec_monitored(self, wf: _Monitored, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._watch(wf.observers)
        watched = dataclasses.replace(frame, observers=frame.observers + wf.observers)
        self._exec(wf.inner, ctx, watched, cont)

    def _exec_checkpointed(self, wf: _Checkpointed, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec(wf.inner, ctx, dataclasses.replace(frame, strategy=wf.strategy), cont)

    def _exec_adaptive(self, wf: _Adaptive, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec(wf.inner, ctx, dataclasses.replace(frame, placement=wf.strategy), cont)

    def _exec_predictive(self, wf: _Predictive, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        """Use the prediction when sure enough; else run, and teach the predictor."""
        try:
            prediction = wf.predictor.predict(ctx)
            seen = copy.deepcopy(ctx)
        except Exception as exc:
            error = PermanentError(f"predictor of {wf.name!r} raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            cont(_Err(error))
            return
        if prediction is not None and prediction.confidence >= wf.threshold:
            log.info(
                "run %s: %s predicted (confidence %.2f)",
                self.run_id,
                wf.name,
                prediction.confidence,
            )
            cont(_Ok(prediction.output, ctx))
            return

        def learn(outcome: _Outcome) -> None:
            if isinstance(outcome, _Ok):
                try:
                    wf.predictor.observe(seen, outcome.output)
                except Exception:
                    log.exception("run %s: predictor of %s failed to learn", self.run_id, wf.name)
            cont(outcome)

        self._exec(wf.inner, ctx, frame, learn)

    def _exec_named(self, wf: _Named, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec(wf.inner, ctx, frame.child(wf.name), cont)

    def _exec_then(
        self,
        wf: _Then,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:

        def run_from(index: int, ctx: Any) -> None:
            def after(outcome: _Outcome) -> None:
                if isinstance(outcome, _Err) or index + 1 == len(wf.steps):
                    cont(outcome)
                else:
                    run_from(index + 1, outcome.ctx)

            self._exec(wf.steps[index], ctx, frame.child(index), after)

        run_from(0, ctx)

    def _exec_when(
        self,
        wf: _When,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        path = frame.path
        try:
            holds = bool(wf.condition(ctx))
        except Exception as exc:
            error = PermanentError(f"condition of {wf.name!r} raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            cont(_Err(error))
            return
        if holds:
            self._exec(wf.inner, ctx, frame.child(0), cont)
        elif wf.skip:
            self._record_skipped(wf.inner, path)
            cont(_Ok(None, ctx))
        else:
            cont(_Err(ConditionNotMet(f"condition of {wf.name!r} was false")))

    def _record_skipped(self, wf: Workflow[Any, Any], path: tuple[Any, ...]) -> None:
        if isinstance(wf, _Task):
            self._report(self._key((*path, 0), wf.name), skipped=True)

    def _exec_parallel(
        self,
        wf: _Parallel,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        scope = frame.scope
        snapshot = copy.deepcopy(ctx)
        count = len(wf.branches)
        outputs: list[Any] = [None] * count
        contexts: list[Any] = [None] * count
        pending = set(range(count))
        scopes = [scope.child() for _ in range(count)]
        state = {"done": False}

        def branch_done(index: int, outcome: _Outcome) -> None:
            if state["done"]:
                return
            if isinstance(outcome, _Err):
                state["done"] = True
                for other in scopes:
                    self._cancel_scope(other, f"sibling branch of {wf.name!r} failed")
                cont(outcome)
                return
            outputs[index], contexts[index] = outcome.output, outcome.ctx
            pending.discard(index)
            if not pending:
                state["done"] = True
                try:
                    merged = merge_contexts(ctx, snapshot, contexts)
                except Exception as exc:
                    cont(_Err(exc))
                    return
                cont(_Ok(tuple(outputs), merged))

        for index, branch in enumerate(wf.branches):
            self._exec(
                branch,
                copy.deepcopy(snapshot),
                dataclasses.replace(frame.child(index), scope=scopes[index]),
                functools.partial(branch_done, index),
            )

    def _exec_nested(
        self,
        wf: _Nested,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        try:
            inner_ctx = wf.ctx_mapper(ctx)
        except Exception as exc:
            cont(_Err(self._mapper_error(wf, "ctx_mapper", exc)))
            return

        def after_inner(outcome: _Outcome) -> None:
            if isinstance(outcome, _Err):
                cont(outcome)
                return
            try:
                output = wf.out_mapper(ctx, outcome.output)
            except Exception as exc:
                cont(_Err(self._mapper_error(wf, "out_mapper", exc)))
                return
            cont(_Ok(output, ctx))

        self._exec(wf.inner, inner_ctx, frame.child(0), after_inner)

    @staticmethod
    def _mapper_error(wf: _Nested, which: str, exc: Exception) -> PermanentError:
        error = PermanentError(f"{which} of {wf.name!r} raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    def _exec_dynamic(
        self,
        wf: _Dynamic,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        try:
            if wf.condition is not None and not wf.condition(ctx):
                cont(_Ok(None, ctx))
                return
            generated: object = wf.factory(ctx)
        except Exception as exc:
            error = PermanentError(f"dynamic {wf.name!r} raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            cont(_Err(error))
            return
        if not isinstance(generated, Workflow):
            cont(
                _Err(
                    PermanentError(
                        f"dynamic {wf.name!r}: factory returned {generated!r}, not a Workflow"
                    )
                )
            )
            return
        self._exec(generated, ctx, frame.child(wf.name), cont)

    def _later(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """A thread-safe callback that runs ``handler(value)`` in this actor's thread."""
        me, token = self.actor_ref, next(self._tokens)
        box: list[Any] = []
        self._wakeups[token] = lambda: handler(box[0])

        def deliver(value: Any) -> None:
            box.append(value)
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(_Wake(token))

        return deliver

    def _exec_locked(self, wf: _Locked, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        """Acquire the lock (waiting in the manager, not here), run inside, release."""
        if self._locks is None:
            cont(_Err(LockError(f"no lock manager for lock {wf.lock!r}")))
            return
        locks, scope = self._locks, frame.scope
        state: dict[str, Any] = {"token": None, "lost": None}

        def renew_later() -> None:
            self._schedule(scope, wf.lease / 3, renew)

        def renew() -> None:
            if state["token"] is None:
                return
            locks.request(
                "renew",
                {"name": wf.lock, "token": state["token"], "lease": wf.lease},
                self._later(renewed),
            )

        def renewed(answer: Any) -> None:
            if isinstance(answer, BaseException):
                state["lost"] = answer  # the lease is gone: the fenced section must not finish OK
                log.error("run %s: lock %r lost: %s", self.run_id, wf.lock, answer)
            elif state["token"] is not None:
                renew_later()

        def after(outcome: _Outcome) -> None:
            token, state["token"] = state["token"], None
            locks.request("release", {"name": wf.lock, "token": token}, lambda _answer: None)
            if isinstance(outcome, _Ok) and state["lost"] is not None:
                outcome = _Err(state["lost"])
            cont(outcome)

        def granted(answer: Any) -> None:
            if isinstance(answer, BaseException):
                cont(_Err(answer))
                return
            if scope.canceled:
                locks.request("release", {"name": wf.lock, "token": answer.token}, lambda _a: None)
                return
            state["token"] = answer.token
            renew_later()
            inner = dataclasses.replace(frame, locks=(*frame.locks, (wf.lock, answer.token)))
            self._exec(wf.inner, ctx, inner, after)

        locks.request(
            "acquire",
            {
                "name": wf.lock,
                "owner": f"run {self.run_id}",
                "lease": wf.lease,
                "timeout": wf.timeout,
            },
            self._later(granted),
        )

    def _exec_retry(
        self,
        wf: _Retry,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        path, scope = frame.path, frame.scope
        if isinstance(wf.inner, _Task):
            self._exec_task(wf.inner, ctx, frame, cont, wf.policy)
            return
        key = self._key((*path, "retry"), wf.name)
        attempt = 1
        snapshot = copy.deepcopy(ctx)

        def after(outcome: _Outcome) -> None:
            nonlocal attempt
            if isinstance(outcome, _Ok) or not wf.policy.should_retry(outcome.error, attempt):
                cont(outcome)
                return
            attempt += 1
            delay = wf.policy.delay(attempt - 1)
            self._emit(
                ev.Retrying(self.run_id, key, attempt, delay, outcome.error, self._clock.wall())
            )
            self._schedule(
                scope,
                delay,
                lambda: self._exec(wf.inner, copy.deepcopy(snapshot), frame, after),
            )

        self._exec(wf.inner, ctx, frame, after)

    # -- tasks ---------------------------------------------------------------------

    def _exec_task(
        self,
        wf: _Task,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
        policy: RetryPolicy | None,
    ) -> None:
        path, scope, observers = frame.path, frame.scope, frame.observers
        tokens = dict(frame.locks)
        key = self._key(path, wf.name)
        if observers:
            self._monitors[key] = observers
        if key in self._replay:
            self._replay_step(key, cont)
            return
        scope.steps.add(key)

        def on_result(result: StepResult) -> None:
            if result.state is NodeState.COMPLETED:
                if not self._record_completed(key, result, frame.strategy):
                    return
                self._report(
                    key,
                    state=NodeState.COMPLETED,
                    attempts=result.attempt,
                    finished_at=self._clock.wall(),
                    error=None,
                )
                self._emit(
                    ev.Completed(
                        self.run_id,
                        key,
                        result.attempt,
                        result.finished_at - result.started_at,
                        self._clock.wall(),
                    )
                )
                self._retire(key)
                cont(_Ok(result.output, result.ctx))
                return
            error = result.error or WorkflowError(f"step {key!r} ended {result.state}")
            retry = policy is not None and policy.should_retry(error, result.attempt)
            self._report(
                key,
                state=NodeState.FAILED,
                attempts=result.attempt,
                error=error,
                finished_at=self._clock.wall(),
            )
            self._emit(
                ev.Failed(self.run_id, key, error, result.attempt, not retry, self._clock.wall())
            )
            if not retry or policy is None:
                if self._record_failed(key, result, error):
                    cont(_Err(error))
                return
            delay = policy.delay(result.attempt)
            self._emit(
                ev.Retrying(self.run_id, key, result.attempt + 1, delay, error, self._clock.wall())
            )
            self._backing_off.add(key)
            self._schedule(
                scope,
                delay,
                lambda: self._dispatch(
                    key, wf, ctx, scope, on_result, tokens=tokens, placement=frame.placement
                ),
            )

        self._dispatch(key, wf, ctx, scope, on_result, tokens=tokens, placement=frame.placement)

    def _replay_step(self, key: str, cont: _Cont) -> None:
        """A step recorded completed before a resume: hand on its output, never rerun it."""
        output, ctx = self._replay.pop(key)
        self._report(key, state=NodeState.COMPLETED, resumed=True)
        token = next(self._tokens)
        # Continue from a fresh message, so replaying a long chain needs no deep stack.
        self._wakeups[token] = lambda: cont(_Ok(output, ctx))
        self.actor_ref.tell(_Wake(token))

    def _record_completed(
        self, key: str, result: StepResult, strategy: CheckpointStrategy | None
    ) -> bool:
        """Checkpoint a completed step; False (and the run failed) if the store refused."""
        if self._recorder is None or not (strategy or self._recorder.strategy).enabled:
            return True
        report = self._steps.get(key)
        try:
            written = self._recorder.step_completed(
                key,
                output=result.output,
                ctx=result.ctx,
                attempts=result.attempt,
                started_at=report.started_at if report else None,
                finished_at=self._clock.wall(),
                strategy=strategy,
            )
        except Exception as exc:
            self._fail_persistence(exc)
            return False
        if written:
            self._emit(ev.Checkpointed(self.run_id, key, self._recorder.epoch, self._clock.wall()))
        return True

    def _record_failed(self, key: str, result: StepResult, error: BaseException) -> bool:
        if self._recorder is None:
            return True
        report = self._steps.get(key)
        try:
            self._recorder.step_failed(
                key,
                error=error,
                attempts=result.attempt,
                started_at=report.started_at if report else None,
                finished_at=self._clock.wall(),
            )
        except Exception as exc:
            self._fail_persistence(exc)
            return False
        return True

    def _fail_persistence(self, exc: Exception) -> None:
        log.error("run %s: checkpoint write failed, stopping the run: %s", self.run_id, exc)
        self._recorder = None  # a fenced-off (zombie) or broken writer writes nothing more
        self._finish(_Err(exc))

    def _renew_lease(self) -> None:
        if self._finished or self._recorder is None:
            return
        try:
            self._recorder.renew(self._lease)
        except Exception as exc:
            self._cancel_scope(self._root, "lost ownership of the run")
            self._fail_persistence(exc)
            return
        self._schedule(self._root, self._lease / 3, self._renew_lease)

    def _dispatch(
        self,
        key: str,
        wf: _Task,
        ctx: Any,
        scope: _Scope,
        on_result: Callable[[StepResult], None],
        exclude: frozenset[str] = frozenset(),
        tokens: dict[str, int] | None = None,
        placement: PlacementStrategy | None = None,
    ) -> None:
        """Start one attempt of ``key`` here or on a peer, reusing a node that sits in Failed."""
        self._backing_off.discard(key)
        if scope.canceled:
            return
        if self._paused:
            self._parked.append(
                lambda: self._dispatch(key, wf, ctx, scope, on_result, exclude, tokens, placement)
            )
            return
        host = self._place(key, wf, exclude, placement)
        self._book.started(host)
        node = self._nodes.get(key)
        if node is None or node.state is not NodeState.FAILED or node.host != host:
            node = self._spawn_node(key, wf) if host == self._node_name else self._remote(key, host)
        node.state = NodeState.RUNNING
        node.starts += 1
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        node_attempt = node.starts if node.ref is not None else attempt
        tokens = tokens or {}
        self._waiting[key] = _Waiting(
            node.incarnation, node_attempt, attempt, scope, on_result, wf, ctx, tokens, placement
        )
        if attempt == 1:
            self._report(
                key, state=NodeState.RUNNING, attempts=1, started_at=self._clock.wall(), node=host
            )
        else:
            self._report(key, state=NodeState.RUNNING, attempts=attempt, node=host)
        if node.ref is not None:
            node.ref.tell(Start(ctx, tokens))
        elif not self._send_remote(key, node, wf, ctx, attempt, tokens, exclude):
            return
        if wf.timeout is not None:
            incarnation, timeout = node.incarnation, wf.timeout
            self._schedule(
                scope,
                timeout,
                lambda: self._on_step_timeout(key, incarnation, node_attempt, timeout),
            )

    def _place(
        self,
        key: str,
        wf: _Task,
        exclude: frozenset[str],
        placement: PlacementStrategy | None,
    ) -> str:
        if self._cluster is None or wf.on == self._node_name:
            return self._node_name
        if wf.on is None and not _has_wire_name(wf):
            return self._node_name  # a lambda or local function can only run here
        if wf.on is not None or placement is None:
            return self._cluster.place(wf.on, exclude)
        candidates = self._cluster.candidates(exclude)
        chosen = placement.choose(key, self._book.loads(candidates))
        if chosen not in candidates:
            raise PermanentError(
                f"placement strategy {placement!r} chose {chosen!r}, not one of {candidates}"
            )
        return chosen

    def _remote(self, key: str, host: str) -> _Node:
        node = _Node(None, next(self._incarnations), threading.Event(), host=host)
        self._nodes[key] = node
        self._hosts_used.add(host)
        return node

    def _send_remote(
        self,
        key: str,
        node: _Node,
        wf: _Task,
        ctx: Any,
        attempt: int,
        tokens: dict[str, int],
        exclude: frozenset[str],
    ) -> bool:
        """Ask ``node.host`` to run the step; on a refusal, fail the attempt at once.

        A placed (unpinned) step whose node went down or left between placement
        and sending is placed again, on another node.
        """
        assert self._cluster is not None
        try:
            request = {
                "run": self.run_id,
                "key": key,
                "inc": node.incarnation,
                "attempt": attempt,
                "task": qualified_name(wf.fn),
                "locks": tokens,
                "ctx": encode_value(
                    ctx, what=f"run {self.run_id} step {key!r} context", root="context"
                ),
            }
            self._cluster.send_step(node.host, request)
        except WorkflowError as exc:
            if isinstance(exc, NodeDown) and wf.on is None:
                log.info("run %s: step %s not sent to %s: %s", self.run_id, key, node.host, exc)
                self._replace(key, node.host, exclude)
                return False
            waiting = self._waiting.pop(key)
            node.state = NodeState.FAILED
            waiting.cont(StepResult(key, NodeState.FAILED, attempt, error=exc))
            return False
        return True

    def _on_remote_report(self, message: RemoteReport) -> None:
        body = require(
            message.body,
            {"key": str, "inc": int, "attempt": int, "state": str, "mro": list},
            "step result",
        )
        key, state = body["key"], NodeState(body["state"])
        output = ctx = None
        error = body.get("error")
        if isinstance(error, RemoteError):
            with_names(error, [str(n) for n in body["mro"]])
        if body.get("refused") is True and self._replace_refused(key, body["inc"], body["attempt"]):
            return
        payload = body.get("payload")
        if state is NodeState.COMPLETED and isinstance(payload, bytes):
            try:
                output, ctx = decode_value(payload, what=f"run {self.run_id} step {key!r} output")
            except WorkflowError as exc:
                state, error = NodeState.FAILED, exc
        result = StepResult(
            key,
            state,
            body["attempt"],
            output,
            ctx,
            error,
            "",
            float(body.get("started") or 0.0),
            float(body.get("finished") or 0.0),
        )
        self._on_report(_NodeReport(body["inc"], result))

    def _replace_refused(self, key: str, incarnation: int, attempt: int) -> bool:
        """A draining node refused the step before running it: place it on another node.

        Not an attempt (the step never started there), so no retry budget is
        spent and no ``Retrying`` is emitted. A step pinned to that node, or a
        stale refusal, is not re-placed (False: it is handled as a failure).
        """
        waiting = self._waiting.get(key)
        node = self._nodes.get(key)
        if (
            waiting is None
            or node is None
            or waiting.incarnation != incarnation
            or node.incarnation != incarnation
            or waiting.node_attempt != attempt
            or waiting.scope.canceled
            or waiting.wf.on is not None
        ):
            return False
        log.info(
            "run %s: step %s refused by draining node %s; re-placing", self.run_id, key, node.host
        )
        self._replace(key, node.host, frozenset())
        return True

    def _replace(self, key: str, host: str, exclude: frozenset[str]) -> None:
        """Dispatch the step waiting on ``host`` again elsewhere, as the same attempt.

        ``exclude`` grows with every node tried, so this ends: with every peer
        excluded, the step runs on this node.
        """
        waiting = self._waiting.pop(key)
        self._nodes.pop(key, None)
        self._book.finished(host, ok=False, duration=0.0)
        self._attempts[key] = waiting.attempt - 1
        self._dispatch(
            key,
            waiting.wf,
            waiting.ctx,
            waiting.scope,
            waiting.cont,
            exclude=exclude | {host},
            tokens=waiting.tokens,
            placement=waiting.placement,
        )

    def _on_node_lost(self, lost: NodeLost) -> None:
        """Re-place, on live nodes, every step in flight on a node that went down or left."""
        for key, waiting in list(self._waiting.items()):
            node = self._nodes.get(key)
            if node is None or node.host != lost.node or waiting.scope.canceled:
                continue
            del self._waiting[key]
            self._nodes.pop(key, None)
            self._book.finished(lost.node, ok=False, duration=0.0)
            error = NodeDown(f"node {lost.node} {lost.status} while running step {key!r}")
            self._emit(
                ev.Retrying(self.run_id, key, waiting.attempt + 1, 0.0, error, self._clock.wall())
            )
            self._dispatch(
                key,
                waiting.wf,
                waiting.ctx,
                waiting.scope,
                waiting.cont,
                exclude=frozenset({lost.node}),
                tokens=waiting.tokens,
                placement=waiting.placement,
            )

    def _spawn_node(self, key: str, wf: _Task) -> _Node:
        incarnation = next(self._incarnations)
        cancel_event = threading.Event()
        me = self.actor_ref

        def report(result: StepResult) -> None:
            me.tell(_NodeReport(incarnation, result))

        ref = self._pool.acquire(
            key,
            wf.fn,
            run_id=self.run_id,
            emit=self._bus.emit,
            report=report,
            cancel_event=cancel_event,
            host=self._node_name,
        )
        node = _Node(ref, incarnation, cancel_event, host=self._node_name)
        self._nodes[key] = node
        return node

    def _retire(self, key: str) -> None:
        """The step's task returned and the step is over: recycle its actor."""
        node = self._nodes.pop(key, None)
        if node is not None and node.ref is not None:
            self._pool.release(node.ref)

    def _on_report(self, report: _NodeReport) -> None:
        result = report.result
        key = result.node_id
        waiting = self._waiting.get(key)
        node = self._nodes.get(key)
        if node is not None and node.incarnation == report.incarnation:
            node.state = result.state
        if (
            waiting is None
            or waiting.incarnation != report.incarnation
            or waiting.node_attempt != result.attempt
            or waiting.scope.canceled
        ):
            if (
                node is not None
                and node.incarnation == report.incarnation
                and result.state is not NodeState.FAILED
            ):
                self._retire(key)
            return  # stale: canceled, timed out, or superseded
        del self._waiting[key]
        if node is not None:
            self._book.finished(
                node.host,
                ok=result.state is NodeState.COMPLETED,
                duration=max(0.0, result.finished_at - result.started_at),
            )
        waiting.cont(dataclasses.replace(result, attempt=waiting.attempt))

    def _on_step_timeout(
        self, key: str, incarnation: int, node_attempt: int, timeout: float
    ) -> None:
        waiting = self._waiting.get(key)
        if (
            waiting is None
            or waiting.incarnation != incarnation
            or waiting.node_attempt != node_attempt
        ):
            return
        node = self._nodes.pop(key, None)  # abandoned: a retry gets a fresh node
        if node is not None:
            self._abandon(key, node, "timed out")
        del self._waiting[key]
        error = StepTimeout(f"step {key!r} attempt {waiting.attempt} ran longer than {timeout}s")
        now = self._clock.now()
        waiting.cont(
            StepResult(
                key,
                NodeState.FAILED,
                waiting.attempt,
                error=error,
                started_at=now - timeout,
                finished_at=now,
            )
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
        for key in scope.steps:
            was_waiting = self._waiting.pop(key, None) is not None
            if not (was_waiting or key in self._backing_off):
                continue  # finished (or failed for good): its state stays
            self._backing_off.discard(key)
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
                self._recorder.finish(state)
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
    _Task: RunCoordinator._exec_plain_task,
    _Then: RunCoordinator._exec_then,
    _When: RunCoordinator._exec_when,
    _Parallel: RunCoordinator._exec_parallel,
    _Nested: RunCoordinator._exec_nested,
    _Retry: RunCoordinator._exec_retry,
    _Monitored: RunCoordinator._exec_monitored,
    _Locked: RunCoordinator._exec_locked,
    _Checkpointed: RunCoordinator._exec_checkpointed,
    _Named: RunCoordinator._exec_named,
    _Adaptive: RunCoordinator._exec_adaptive,
    _Predictive: RunCoordinator._exec_predictive,
    _Dynamic: RunCoordinator._exec_dynamic,
}
