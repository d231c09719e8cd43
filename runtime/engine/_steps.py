"""One task step to its outcome: attempts through the attempt table, retry decisions, records.

A step's node goes ``Running -> Failed -> Running`` on each retry of its own
policy; backoffs are timers. A step recorded completed before a resume is not
run again: its recorded output and context are handed on.
"""

from __future__ import annotations

from typing import Any

from actors import NodeState, StepResult
from runtime.engine._attempts import AttemptTable, StepCall
from runtime.engine._frame import Frame
from runtime.engine._journal import Journal
from runtime.engine._outcome import Continuation, Err, Ok
from runtime.engine._timers import Timers
from runtime.workflow import RetryPolicy, Task
from transport import WorkflowError

__all__ = ["StepRunner"]


class StepRunner:
    """Runs task steps for the interpreter (coordinator thread only)."""

    def __init__(self, attempts: AttemptTable, journal: Journal, timers: Timers) -> None:
        self._attempts = attempts
        self._journal = journal
        self._timers = timers

    def run(
        self,
        step: str,
        task: Task,
        ctx: Any,
        frame: Frame,
        cont: Continuation,
        policy: RetryPolicy | None,
    ) -> None:
        """Run ``task`` as ``step`` under ``policy``; ``cont`` gets its output or final error."""
        self._journal.monitor(step, frame.observers)
        recorded = self._journal.replayed(step)
        if recorded is not None:
            output, after = recorded
            self._timers.soon(lambda: cont(Ok(output, after)))
            return

        def on_result(result: StepResult) -> None:
            if result.state is NodeState.COMPLETED:
                self._attempts.retire(step)  # its task returned: the actor is free again
                self._journal.step_completed(
                    step, result, frame.strategy, lambda: cont(Ok(result.output, result.ctx))
                )
                return
            error = result.error or WorkflowError(f"step {step!r} ended {result.state}")
            retry = policy is not None and policy.should_retry(error, result.attempt)
            final = not retry and not any(again(error) for again in frame.outer_retries)
            if not final:
                self._attempts.await_rerun(step)
            self._journal.step_failed(step, result.attempt, error, final)
            if not retry or policy is None:
                if self._journal.step_failed_for_good(step, result.attempt, error):
                    cont(Err(error))
                return
            delay = policy.delay(result.attempt)
            self._journal.step_retrying(step, result.attempt + 1, delay, error)
            self._timers.schedule(frame.scope, delay, lambda: self._attempts.dispatch(call))

        call = StepCall(step, task, ctx, frame.scope, on_result, dict(frame.locks), frame.placement)
        self._attempts.dispatch(call)
