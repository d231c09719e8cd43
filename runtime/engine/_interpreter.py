"""The interpreter: one method per kind of workflow part, in continuation-passing style.

``run(part, ctx, frame, cont)`` starts a part and later calls ``cont`` with
``Ok(output, ctx)`` or ``Err(error)``. Conditions, mappers, merges and
predictors run here, in the coordinator's thread; tasks go to the step
runner. Nothing here blocks: waits are timers and messages.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from actors import ConditionNotMet, LockError, PermanentError, StepTimeout
from runtime.engine._frame import Frame
from runtime.engine._graph_runner import run_graph
from runtime.engine._journal import Journal
from runtime.engine._locked import LockedSection
from runtime.engine._map import MapRun, item_suffix, read_items
from runtime.engine._merge import merge_contexts
from runtime.engine._outcome import Continuation, Err, Ok, Outcome
from runtime.engine._ports import LockService
from runtime.engine._steps import StepRunner
from runtime.engine._timers import Timers
from runtime.workflow import (
    Adaptive,
    Checkpointed,
    Deadline,
    Dynamic,
    Graph,
    Locked,
    MapItems,
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
    planned_steps,
)

__all__ = ["Interpreter"]

log = logging.getLogger(__name__)


def _raised(what: str, exc: Exception) -> PermanentError:
    """User code (a condition, mapper, factory, predictor) raised: the part fails for good."""
    error = PermanentError(f"{what} raised {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class Interpreter:
    """Walks one run's workflow (coordinator thread only)."""

    def __init__(
        self,
        run_id: str,
        steps: StepRunner,
        journal: Journal,
        timers: Timers,
        locks: LockService | None,
    ) -> None:
        self._run_id = run_id
        self._steps = steps
        self._journal = journal
        self._timers = timers
        self._locks = locks
        self._keys: dict[tuple[Any, ...], str] = {}
        self._key_counts: dict[str, int] = {}

    def run(self, part: Workflow[Any, Any], ctx: Any, frame: Frame, cont: Continuation) -> None:
        if frame.scope.canceled:
            return
        handler = self._HANDLERS.get(type(part))
        if handler is None:
            raise TypeError(f"unknown workflow part {part!r}")
        handler(self, part, ctx, frame, cont)

    def step_key(self, path: tuple[Any, ...], name: str) -> str:
        """A stable, readable key per position: the step's name, ``#n`` on repeats."""
        key = self._keys.get(path)
        if key is None:
            name += item_suffix(path)  # fetch[3]: item 3 of a map, in every run and resume
            count = self._key_counts.get(name, 0) + 1
            self._key_counts[name] = count
            key = name if count == 1 else f"{name}#{count}"
            self._keys[path] = key
        return key

    # -- leaves and wrappers -------------------------------------------------------------

    def _task(self, part: Task, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self._steps.run(self.step_key(frame.path, part.name), part, ctx, frame, cont, None)

    def _monitored(self, part: Monitored, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self._journal.watch(part.observers)
        watched = dataclasses.replace(frame, observers=frame.observers + part.observers)
        self.run(part.inner, ctx, watched, cont)

    def _checkpointed(self, part: Checkpointed, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self.run(part.inner, ctx, dataclasses.replace(frame, strategy=part.strategy), cont)

    def _adaptive(self, part: Adaptive, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self.run(part.inner, ctx, dataclasses.replace(frame, placement=part.strategy), cont)

    def _named(self, part: Named, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self.run(part.inner, ctx, frame.child(part.name), cont)

    def _locked(self, part: Locked, ctx: Any, frame: Frame, cont: Continuation) -> None:
        """Acquire the lock (waiting in the manager, not here), run inside, release."""
        if self._locks is None:
            cont(Err(LockError(f"no lock manager for lock {part.lock!r}")))
            return
        section = LockedSection(part, self._run_id, self._locks, self._timers, frame, cont)
        section.start(lambda held, after: self.run(part.inner, ctx, held, after))

    def _predictive(self, part: Predictive, ctx: Any, frame: Frame, cont: Continuation) -> None:
        """Use the prediction when sure enough; else run, and teach the predictor."""
        try:
            prediction = part.predictor.predict(ctx)
            seen = copy.deepcopy(ctx)
        except Exception as exc:
            cont(Err(_raised(f"predictor of {part.name!r}", exc)))
            return
        used = prediction is not None and prediction.confidence >= part.threshold
        self._plan_skipped(frame, part.name, part.inner, skipped=used)
        if prediction is not None and used:
            log.info(
                "run %s: %s predicted (confidence %.2f)",
                self._run_id,
                part.name,
                prediction.confidence,
            )
            cont(Ok(prediction.output, ctx))
            return

        def learn(outcome: Outcome) -> None:
            if isinstance(outcome, Ok):
                try:
                    part.predictor.observe(seen, outcome.output)
                except Exception:
                    log.exception(
                        "run %s: predictor of %s failed to learn", self._run_id, part.name
                    )
            cont(outcome)

        self.run(part.inner, ctx, frame, learn)

    def _deadline(self, part: Deadline, ctx: Any, frame: Frame, cont: Continuation) -> None:
        """Run the inner part in a scope of its own; at the deadline cancel it and fail."""
        inner = frame.scope.child()
        done = False

        def expire() -> None:
            nonlocal done
            if done:
                return
            done = True
            reason = f"{part.name!r} ran longer than its {part.seconds}s timeout"
            inner.cancel(reason)
            cont(Err(StepTimeout(reason)))

        cancel_timer = self._timers.schedule(frame.scope, part.seconds, expire)

        def finished(outcome: Outcome) -> None:
            nonlocal done
            if done:
                return
            done = True
            cancel_timer()
            inner.dissolve()
            cont(outcome)

        self.run(part.inner, ctx, frame.within(inner), finished)

    def _plan_skipped(
        self, frame: Frame, name: str, inner: Workflow[Any, Any], *, skipped: bool
    ) -> None:
        """Take ``inner``'s steps off the plan when it is skipped (back on when not)."""
        if skipped:
            steps, open_parts = planned_steps(inner)
            self._journal.plan.change(frame.path, name, -steps, -open_parts)
        else:
            self._journal.plan.change(frame.path, name, 0, 0)

    # -- composition ---------------------------------------------------------------------

    def _then(self, part: Then, ctx: Any, frame: Frame, cont: Continuation) -> None:
        def run_from(index: int, ctx: Any) -> None:
            def after(outcome: Outcome) -> None:
                if isinstance(outcome, Err) or index + 1 == len(part.steps):
                    cont(outcome)
                else:
                    run_from(index + 1, outcome.ctx)

            self.run(part.steps[index], ctx, frame.child(index), after)

        run_from(0, ctx)

    def _when(self, part: When, ctx: Any, frame: Frame, cont: Continuation) -> None:
        try:
            holds = bool(part.condition(ctx))
        except Exception as exc:
            cont(Err(_raised(f"condition of {part.name!r}", exc)))
            return
        self._plan_skipped(frame, part.name, part.inner, skipped=not holds and part.skip)
        if holds:
            self.run(part.inner, ctx, frame.child(0), cont)
        elif part.skip:
            if isinstance(part.inner, Task):
                self._journal.step_skipped(self.step_key((*frame.path, 0), part.inner.name))
            cont(Ok(None, ctx))
        else:
            cont(Err(ConditionNotMet(f"condition of {part.name!r} was false")))

    def _parallel(self, part: Parallel, ctx: Any, frame: Frame, cont: Continuation) -> None:
        snapshot = copy.deepcopy(ctx)
        count = len(part.branches)
        outputs: list[Any] = [None] * count
        contexts: list[Any] = [None] * count
        pending = set(range(count))
        scopes = [frame.scope.child() for _ in range(count)]
        done = False

        def branch_done(index: int, outcome: Outcome) -> None:
            nonlocal done
            if done:
                return
            if isinstance(outcome, Err):
                done = True
                for other in scopes:
                    other.cancel(f"sibling branch of {part.name!r} failed")
                cont(outcome)
                return
            outputs[index], contexts[index] = outcome.output, outcome.ctx
            pending.discard(index)
            if pending:
                return
            done = True
            for scope in scopes:
                scope.dissolve()
            try:  # by call order and values only: the same whatever order branches ended in
                merged = merge_contexts(
                    ctx,
                    snapshot,
                    contexts,
                    names=[branch.name for branch in part.branches],
                    merge=part.merge,
                    part=part.name,
                )
            except Exception as exc:
                cont(Err(exc))
                return
            cont(Ok(tuple(outputs), merged))

        for index, branch in enumerate(part.branches):
            self.run(
                branch,
                copy.deepcopy(snapshot),
                frame.child(index).within(scopes[index]),
                functools.partial(branch_done, index),
            )

    def _map_items(self, part: MapItems, ctx: Any, frame: Frame, cont: Continuation) -> None:
        """One part per item of ``part.items(ctx)``, read here, now (see ``_map.MapRun``)."""
        try:
            items = read_items(part, ctx)
        except Exception as exc:
            cont(Err(_raised(f"items of {part.name!r}", exc)))
            return
        steps, open_parts = planned_steps(part.inner)
        count = len(items)
        self._journal.plan.change(frame.path, part.name, count * steps, count * open_parts - 1)
        MapRun(part, ctx, frame, cont).start(items, self.run)

    def _nested(self, part: Nested, ctx: Any, frame: Frame, cont: Continuation) -> None:
        try:
            inner_ctx = part.ctx_mapper(ctx)
        except Exception as exc:
            cont(Err(_raised(f"ctx_mapper of {part.name!r}", exc)))
            return

        def after_inner(outcome: Outcome) -> None:
            if isinstance(outcome, Err):
                cont(outcome)
                return
            try:
                output = part.out_mapper(ctx, outcome.output)
            except Exception as exc:
                cont(Err(_raised(f"out_mapper of {part.name!r}", exc)))
                return
            cont(Ok(output, ctx))

        self.run(part.inner, inner_ctx, frame.child(0), after_inner)

    def _dynamic(self, part: Dynamic, ctx: Any, frame: Frame, cont: Continuation) -> None:
        try:
            if part.condition is not None and not part.condition(ctx):
                self._journal.plan.change(frame.path, part.name, 0, -1)
                cont(Ok(None, ctx))
                return
            generated: object = part.factory(ctx)
        except Exception as exc:
            cont(Err(_raised(f"dynamic {part.name!r}", exc)))
            return
        if not isinstance(generated, Workflow):
            cont(
                Err(
                    PermanentError(
                        f"dynamic {part.name!r}: factory returned {generated!r}, not a Workflow"
                    )
                )
            )
            return
        steps, open_parts = planned_steps(generated)
        self._journal.plan.change(frame.path, part.name, steps, open_parts - 1)
        self.run(generated, ctx, frame.child(part.name), cont)

    def _retry(self, part: Retry, ctx: Any, frame: Frame, cont: Continuation) -> None:
        if isinstance(part.inner, Task):  # a task's own policy: its node goes Failed -> Running
            step = self.step_key(frame.path, part.inner.name)
            self._steps.run(step, part.inner, ctx, frame, cont, part.policy)
            return
        key = self.step_key((*frame.path, "retry"), part.name)
        attempt = 1
        snapshot = copy.deepcopy(ctx)
        inner = dataclasses.replace(
            frame,
            outer_retries=(
                *frame.outer_retries,
                lambda error: part.policy.should_retry(error, attempt),
            ),
        )

        def after(outcome: Outcome) -> None:
            nonlocal attempt
            if isinstance(outcome, Ok) or not part.policy.should_retry(outcome.error, attempt):
                cont(outcome)
                return
            attempt += 1
            delay = part.policy.delay(attempt - 1)
            self._journal.step_retrying(key, attempt, delay, outcome.error)
            self._timers.schedule(
                frame.scope,
                delay,
                lambda: self.run(part.inner, copy.deepcopy(snapshot), inner, after),
            )

        self.run(part.inner, ctx, inner, after)

    _HANDLERS: ClassVar[dict[type, Callable[..., None]]] = {
        Task: _task,
        Then: _then,
        When: _when,
        Parallel: _parallel,
        MapItems: _map_items,
        Nested: _nested,
        Retry: _retry,
        Monitored: _monitored,
        Locked: _locked,
        Checkpointed: _checkpointed,
        Named: _named,
        Adaptive: _adaptive,
        Predictive: _predictive,
        Dynamic: _dynamic,
        Deadline: _deadline,
        Graph: run_graph,
    }
