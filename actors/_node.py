"""NodeActor: one workflow step as a pykka actor with a state machine.

The node runs its task in its own actor thread when it receives ``Start`` and
reports a ``StepResult`` through the ``report`` callback (a ``tell`` to the run
coordinator: never a blocking ask, so no cycle can deadlock). The task runs
inside a guard that catches ``BaseException``, because pykka stops every actor
of the process (``ActorRegistry.stop_all()``) when a ``SystemExit`` or
``KeyboardInterrupt`` escapes any actor: a task raising either fails its step
instead.

Cancellation is cooperative: the coordinator sets the node's cancel event; a
running task can poll ``current_step().cancel_requested``; whatever the task
returns afterwards, the node ends Canceled, never Completed.

An ``async def`` task runs on the node thread's own event loop, and a cancel
reaches it as ``asyncio.CancelledError`` (see ``actors._async`` for why). A
task that returns an awaitable instead of a value fails with a
``PermanentError``: nothing would ever await it.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import threading
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors._async import StepLoop, is_async, not_awaited
from actors._clock import Clock
from actors._errors import PermanentError
from actors._notify import NotifyingEvent
from actors._state import NodeState, StateMachine
from actors.events import Event, Started

__all__ = [
    "Assign",
    "CancelNode",
    "NodeActor",
    "Start",
    "StepInfo",
    "StepLogger",
    "StepResult",
    "current_step",
]

STEP_LOGGER = "actorflow.step"


class StepLogger(logging.LoggerAdapter[logging.Logger]):
    """Logs as a step: every record carries ``run_id``, ``step`` and ``attempt`` attributes.

    So a handler or formatter (``runtime.JsonFormatter``, ``%(run_id)s``) can
    tell which run, step and attempt wrote a line, even with many running at
    once in one process. A call's own ``extra=`` is kept beside them.
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs


@dataclass(frozen=True)
class StepInfo:
    """What a running task may know about itself (see ``current_step``)."""

    run_id: str
    step: str
    attempt: int
    cancel_event: threading.Event
    fencing_tokens: Mapping[str, int] = field(default_factory=dict)
    """Tokens of the locks held around this step (``wf.locked(name)``), by lock name."""

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of the same step of the same run.

        A step may run twice (at-least-once: the attempt in flight at a crash
        runs again on resume), so side effects should be keyed by this.
        """
        return f"{self.run_id}/{self.step}"

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def log(self) -> StepLogger:
        """A logger (``actorflow.step``) whose records say which run, step and attempt wrote."""
        extra = {"run_id": self.run_id, "step": self.step, "attempt": self.attempt}
        return StepLogger(logging.getLogger(STEP_LOGGER), extra)


_current: contextvars.ContextVar[StepInfo] = contextvars.ContextVar("actorflow_step")


def current_step() -> StepInfo:
    """The step the calling task runs as; raises LookupError outside a task."""
    return _current.get()


@dataclass(frozen=True)
class Start:
    """Run the task once on ``ctx`` (``tokens``: fencing tokens of the locks held around it).

    With ``decode``, ``ctx`` is what ``decode`` turns into the task's context,
    on the node's own thread (a context that arrived encoded is decoded there,
    not on the thread that received it). If ``decode`` raises, the attempt is
    reported ``Failed`` with that error without having run: no transition.
    """

    ctx: Any
    tokens: Mapping[str, int] = field(default_factory=dict)
    decode: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Assign:
    """Host another step: a pooled node actor is re-bound to a fresh state machine.

    With ``start``, the new step's first attempt starts at once (one message,
    one wake-up of the node's thread, where ``Assign`` then ``Start`` took two).
    """

    step: str
    fn: Callable[[Any], Any]
    run_id: str
    emit: Callable[[Event], None]
    report: Callable[[StepResult], None]
    cancel_event: NotifyingEvent
    node: str = ""
    start: Start | None = None


@dataclass(frozen=True)
class CancelNode:
    """Cancel a node that is Pending or Failed (a running task sees the cancel event)."""

    reason: str = ""


@dataclass(frozen=True)
class StepResult:
    """What one attempt produced, reported to the coordinator."""

    step: str
    state: NodeState
    attempt: int
    output: Any = None
    ctx: Any = None
    error: BaseException | None = None
    traceback: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


class NodeActor(pykka.ThreadingActor):
    """Hosts one step at a time. Messages (tells only): ``Start``, ``CancelNode``, ``Assign``.

    A finished node actor can be re-bound to another step with ``Assign`` (see
    ``NodePool``): it keeps its thread and mailbox but gets a fresh state
    machine, because starting a thread per step would cost more than the step.
    """

    def __init__(
        self,
        step: str,
        fn: Callable[[Any], Any],
        *,
        run_id: str,
        clock: Clock,
        emit: Callable[[Event], None],
        report: Callable[[StepResult], None],
        cancel_event: NotifyingEvent | None = None,
        node: str = "",
    ) -> None:
        super().__init__()
        self._clock = clock
        self._loop = StepLoop()  # kept across the steps this actor hosts; closed in on_stop
        self._bind(Assign(step, fn, run_id, emit, report, cancel_event or NotifyingEvent(), node))

    def _bind(self, step: Assign) -> None:
        self.step = step.step
        self._fn = step.fn
        self._is_async = is_async(step.fn)
        self._run_id = step.run_id
        self._emit = step.emit
        self._report = step.report
        self._node = step.node
        self.cancel_event = step.cancel_event
        self.machine = StateMachine(
            step.step, clock=self._clock, emit=step.emit, run_id=step.run_id
        )

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Assign):
            self._bind(message)
            if message.start is not None:
                self._run(message.start)
        elif isinstance(message, Start):
            self._run(message)
        elif isinstance(message, CancelNode):
            if self.machine.state in (NodeState.PENDING, NodeState.FAILED):
                self.machine.transition(NodeState.CANCELED)
        else:
            raise TypeError(f"node {self.step!r} got unknown message {message!r}")
        return None

    def on_stop(self) -> None:
        self._loop.close()

    def on_failure(self, *exc_info: object) -> None:
        self._loop.close()  # pykka stops a failed actor without calling on_stop

    def _run(self, start: Start) -> None:
        if self.cancel_event.is_set():
            if not self.machine.state.is_final:
                self.machine.transition(NodeState.CANCELED)
            self._report(StepResult(self.step, NodeState.CANCELED, self.machine.attempts))
            return
        ctx = start.ctx
        if start.decode is not None:
            try:
                ctx = start.decode(ctx)
            except Exception as exc:  # noqa: BLE001 - an undecodable context fails the attempt
                self._report(
                    StepResult(self.step, NodeState.FAILED, self.machine.attempts, error=exc)
                )
                return
        self.machine.transition(NodeState.RUNNING)
        attempt = self.machine.attempts
        started = self._clock.now()
        self._emit(Started(self._run_id, self.step, attempt, self._node, self._clock.wall()))
        info = StepInfo(self._run_id, self.step, attempt, self.cancel_event, start.tokens)
        token = _current.set(info)
        try:
            output = self._call(ctx)
        except BaseException as exc:  # noqa: BLE001 - see module docstring: the guard is the point
            result = self._finish_failed(exc, attempt, started)
        else:
            result = self._finish_ok(output, ctx, attempt, started)
        finally:
            _current.reset(token)
        self._report(result)

    def _call(self, ctx: Any) -> Any:
        output = self._fn(ctx)
        if self._is_async and inspect.iscoroutine(output):
            output = self._loop.run(output, self.cancel_event)
        if inspect.isawaitable(output):
            raise not_awaited(self.step, self._fn, output)
        return output

    def _finish_ok(self, output: Any, ctx: Any, attempt: int, started: float) -> StepResult:
        state = NodeState.CANCELED if self.cancel_event.is_set() else NodeState.COMPLETED
        self.machine.transition(state)
        return StepResult(
            self.step, state, attempt, output, ctx, None, "", started, self._clock.now()
        )

    def _finish_failed(self, exc: BaseException, attempt: int, started: float) -> StepResult:
        text = "".join(traceback.format_exception(exc))
        if not isinstance(exc, Exception):
            exc = _contained(self.step, exc)
        # A failure after a cancel request is a cancel: the error is kept, the state is not Failed.
        state = NodeState.CANCELED if self.cancel_event.is_set() else NodeState.FAILED
        self.machine.transition(state, error=exc)
        return StepResult(
            self.step, state, attempt, None, None, exc, text, started, self._clock.now()
        )


def _contained(step: str, exc: BaseException) -> PermanentError:
    """A task's ``SystemExit``, ``KeyboardInterrupt`` (or other ``BaseException``) as an error.

    Re-raised as it is in the caller's ``result()``, it would end the caller's
    process (``SystemExit(3)`` exits with status 3); as a ``PermanentError`` whose
    ``__cause__`` is the original, it fails the step and is not retried by default.
    """
    error = PermanentError(f"step {step!r} raised {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
