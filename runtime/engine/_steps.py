"""How the run coordinator runs one task step: node actor, attempts, result, checkpoint.

A step is dispatched to a pooled node actor here or (through
``RemotePlacement``) on another node; its result comes back as a message and
is matched by incarnation and attempt, so stale reports are ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from actors import (
    NodeState,
    Start,
    StepResult,
    StepTimeout,
)
from actors import events as ev
from runtime.engine._run_model import (
    CoordinatorBase,
    _Cont,
    _Err,
    _Frame,
    _Node,
    _NodeReport,
    _Ok,
    _Scope,
    _Waiting,
    _Wake,
)
from runtime.workflow import (
    CheckpointStrategy,
    PlacementStrategy,
    RetryPolicy,
    Task,
)
from transport import WorkflowError

__all__ = ["StepDriver"]

log = logging.getLogger(__name__)


class StepDriver(CoordinatorBase):
    """Tasks: node actors, attempts, results, timeouts and step checkpoints."""

    # -- tasks ---------------------------------------------------------------------

    def _exec_task(
        self,
        wf: Task,
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
            final = not retry and not any(again(error) for again in frame.outer_retries)
            if not final:
                self._rerun_pending.add(key)
            self._emit(
                ev.Failed(self.run_id, key, error, result.attempt, final, self._clock.wall())
            )
            if not retry or policy is None:
                if self._record_failed(key, result, error):
                    cont(_Err(error))
                return
            delay = policy.delay(result.attempt)
            self._emit(
                ev.Retrying(self.run_id, key, result.attempt + 1, delay, error, self._clock.wall())
            )
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
        wf: Task,
        ctx: Any,
        scope: _Scope,
        on_result: Callable[[StepResult], None],
        exclude: frozenset[str] = frozenset(),
        tokens: dict[str, int] | None = None,
        placement: PlacementStrategy | None = None,
    ) -> None:
        """Start one attempt of ``key`` here or on a peer, reusing a node that sits in Failed."""
        if scope.canceled:
            return
        # A step inside a held lock is never queued: queued behind a step that waits for
        # that lock, neither would ever end (priority inversion). It may exceed the bound.
        if self._paused or (self._at_capacity() and key not in self._waiting and not tokens):
            # Held back: parked until unpaused, or queued until an attempt ends.
            (self._parked if self._paused else self._queued).append(
                lambda: self._dispatch(key, wf, ctx, scope, on_result, exclude, tokens, placement)
            )
            return  # a held-back rerun stays pending: a cancel still ends its story
        self._rerun_pending.discard(key)
        host = self._place(key, wf, exclude, placement)
        self._book.started(host)
        node = self._nodes.get(key)
        if node is not None and node.cancel_event.is_set():
            # Canceled before (a failed sibling, then an outer retry): never reuse it, and
            # never drop it untracked: a running one stops after its task returns.
            del self._nodes[key]
            if node.ref is not None:
                if node.state is NodeState.RUNNING:
                    node.ref.stop(block=False)
                else:
                    self._pool.release(node.ref)
            node = None
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
        if wf.attempt_timeout is not None:
            incarnation, timeout = node.incarnation, wf.attempt_timeout
            self._schedule(
                scope,
                timeout,
                lambda: self._on_step_timeout(key, incarnation, node_attempt, timeout),
            )

    def _at_capacity(self) -> bool:
        return self._max_running is not None and len(self._waiting) >= self._max_running

    def _admit_queued(self) -> None:
        """Start queued attempts, oldest first, while fewer than ``max_running`` run."""
        while self._queued and not self._at_capacity() and not self._finished:
            self._queued.popleft()()

    def _spawn_node(self, key: str, wf: Task) -> _Node:
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
