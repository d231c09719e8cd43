"""How the run coordinator walks composition nodes, in continuation-passing style.

Each ``_exec_<kind>`` starts a sub-workflow and later calls its continuation
with ``_Ok(output, ctx)`` or ``_Err(error)``; all of it runs in the
coordinator's thread, never blocking (waits are timers and messages).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors import (
    ConditionNotMet,
    LockError,
    PermanentError,
    StepTimeout,
)
from actors import events as ev
from runtime.engine._merge import merge_contexts
from runtime.engine._run_model import (
    CoordinatorBase,
    _Cont,
    _Err,
    _Frame,
    _Ok,
    _Outcome,
    _Wake,
)
from runtime.workflow import (
    Adaptive,
    Checkpointed,
    Deadline,
    Dynamic,
    Locked,
    Monitored,
    Named,
    Nested,
    Parallel,
    Predictive,
    Retry,
    Task,
    Then,
    When,
    Workflow,
)

__all__ = ["Combinators"]

log = logging.getLogger(__name__)


class Combinators(CoordinatorBase):
    """The interpreter of composition nodes (then, when, parallel, nested, retry, ...)."""

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

    def _exec_plain_task(self, wf: Task, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec_task(wf, ctx, frame, cont, None)

    def _exec_monitored(self, wf: Monitored, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._watch(wf.observers)
        watched = dataclasses.replace(frame, observers=frame.observers + wf.observers)
        self._exec(wf.inner, ctx, watched, cont)

    def _exec_checkpointed(self, wf: Checkpointed, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec(wf.inner, ctx, dataclasses.replace(frame, strategy=wf.strategy), cont)

    def _exec_adaptive(self, wf: Adaptive, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec(wf.inner, ctx, dataclasses.replace(frame, placement=wf.strategy), cont)

    def _exec_predictive(self, wf: Predictive, ctx: Any, frame: _Frame, cont: _Cont) -> None:
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

    def _exec_deadline(self, wf: Deadline, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        """Run the inner part in a scope of its own; at the deadline cancel it and fail."""
        inner = frame.scope.child()
        done = False

        def expire() -> None:
            nonlocal done
            if done:
                return
            done = True
            reason = f"{wf.name!r} ran longer than its {wf.seconds}s timeout"
            self._cancel_scope(inner, reason)
            cont(_Err(StepTimeout(reason)))

        cancel_timer = self._schedule(frame.scope, wf.seconds, expire)

        def finished(outcome: _Outcome) -> None:
            nonlocal done
            if done:
                return
            done = True
            cancel_timer()
            cont(outcome)

        self._exec(wf.inner, ctx, dataclasses.replace(frame, scope=inner), finished)

    def _exec_named(self, wf: Named, ctx: Any, frame: _Frame, cont: _Cont) -> None:
        self._exec(wf.inner, ctx, frame.child(wf.name), cont)

    def _exec_then(
        self,
        wf: Then,
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
        wf: When,
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
        if isinstance(wf, Task):
            self._report(self._key((*path, 0), wf.name), skipped=True)

    def _exec_parallel(
        self,
        wf: Parallel,
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
        wf: Nested,
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
    def _mapper_error(wf: Nested, which: str, exc: Exception) -> PermanentError:
        error = PermanentError(f"{which} of {wf.name!r} raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    def _exec_dynamic(
        self,
        wf: Dynamic,
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

    def _later(
        self, handler: Callable[[Any], None], on_dead: Callable[[Any], None] | None = None
    ) -> Callable[[Any], None]:
        """A thread-safe callback that runs ``handler(value)`` in this actor's thread.

        With ``on_dead``, a value this actor can no longer handle (it stopped before or
        while the value came) goes to ``on_dead(value)`` instead, in some other thread.
        """
        me, token = self.actor_ref, next(self._tokens)
        box: list[Any] = []
        guard = threading.Lock()
        settled = [False]  # handler or on_dead took the value: never both, never twice
        gone = [False]  # this actor stopped: on_dead takes what comes

        def take() -> bool:
            with guard:
                if not box or settled[0]:
                    return False
                settled[0] = True
                return True

        def here() -> None:
            self._orphans.pop(token, None)
            if take():
                handler(box[0])

        self._wakeups[token] = here
        if on_dead is not None:
            dead = on_dead

            def orphaned() -> None:  # from on_stop: a value told but never handled
                with guard:
                    gone[0] = True
                if take():
                    dead(box[0])

            self._orphans[token] = orphaned

        def deliver(value: Any) -> None:
            with guard:
                box.append(value)
                stopped = gone[0]
            if not stopped:
                try:
                    me.tell(_Wake(token))
                    return
                except pykka.ActorDeadError:
                    pass
            if on_dead is not None and take():
                on_dead(value)

        return deliver

    def _exec_locked(self, wf: Locked, ctx: Any, frame: _Frame, cont: _Cont) -> None:
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

        def release() -> None:
            token, state["token"] = state["token"], None
            if token is not None:
                locks.request("release", {"name": wf.lock, "token": token}, lambda _answer: None)

        def after(outcome: _Outcome) -> None:
            release()
            if isinstance(outcome, _Ok) and state["lost"] is not None:
                outcome = _Err(state["lost"])
            cont(outcome)

        def give_back(answer: Any) -> None:
            if not isinstance(answer, BaseException):
                locks.request("release", {"name": wf.lock, "token": answer.token}, lambda _a: None)

        def granted(answer: Any) -> None:
            if isinstance(answer, BaseException):
                cont(_Err(answer))
                return
            if scope.canceled:
                locks.request("release", {"name": wf.lock, "token": answer.token}, lambda _a: None)
                return
            state["token"] = answer.token
            scope.on_cancel.append(release)  # a canceled section gives the lock back at once
            renew_later()
            inner = dataclasses.replace(frame, locks=(*frame.locks, (wf.lock, answer.token)))
            self._exec(wf.inner, ctx, inner, after)

        locks.request(
            "acquire",
            {
                "name": wf.lock,
                "owner": f"run {self.run_id}",
                "lease": wf.lease,
                "timeout": wf.wait_timeout,
            },
            # A grant that comes after the run ended (its deadline passed, it was canceled
            # or failed while waiting) is given back, not held until its lease runs out.
            self._later(granted, on_dead=give_back),
        )

    def _exec_retry(
        self,
        wf: Retry,
        ctx: Any,
        frame: _Frame,
        cont: _Cont,
    ) -> None:
        path, scope = frame.path, frame.scope
        if isinstance(wf.inner, Task):
            self._exec_task(wf.inner, ctx, frame, cont, wf.policy)
            return
        key = self._key((*path, "retry"), wf.name)
        attempt = 1
        snapshot = copy.deepcopy(ctx)
        inner = dataclasses.replace(
            frame,
            outer_retries=(
                *frame.outer_retries,
                lambda error: wf.policy.should_retry(error, attempt),
            ),
        )

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
                lambda: self._exec(wf.inner, copy.deepcopy(snapshot), inner, after),
            )

        self._exec(wf.inner, ctx, inner, after)
