"""Running a ``Graph``: each part starts once every part it depends on completed.

A part's context is built by the rule in ``runtime/workflow/_graph.py``: the
graph's starting context with the changes of its ancestors applied in the
graph's order (a part with one dependency simply continues from that one's
context, which is the same thing). A change is what ``merge_contexts`` counts
as one, taken between the context a part started from and the one it left.
The first part that fails cancels the running ones and fails the graph; the
parts not started yet never start. Parts are ordinary parts of the run: their
steps are checkpointed, replayed on resume, retried, bounded by
``max_running_steps`` and placed like any other.
"""

from __future__ import annotations

import copy
import functools
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from runtime.engine._frame import Frame
from runtime.engine._merge import merge_contexts
from runtime.engine._outcome import Continuation, Err, Ok, Outcome
from runtime.engine._scope import CancelScope
from runtime.workflow import Graph, Workflow

__all__ = ["run_graph"]

_Run = Callable[[Workflow[Any, Any], Any, Frame, Continuation], None]


class _Runs(Protocol):
    def run(self, part: Workflow[Any, Any], ctx: Any, frame: Frame, cont: Continuation) -> None: ...


def run_graph(interpreter: _Runs, part: Graph, ctx: Any, frame: Frame, cont: Continuation) -> None:
    """The interpreter's handler for ``Graph`` (its signature is the handler table's)."""
    _GraphRun(interpreter.run, part, ctx, frame, cont).start()


class _GraphRun:
    """One graph in flight (coordinator thread only)."""

    def __init__(self, run: _Run, part: Graph, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self._run = run
        self._part = part
        self._ctx = ctx
        self._start = copy.deepcopy(ctx)
        self._frame = frame
        self._cont = cont
        count = len(part.members)
        self._waiting = [len(deps) for deps in part.after]
        self._dependents: list[list[int]] = [[] for _ in range(count)]
        for i, deps in enumerate(part.after):
            for dep in deps:
                self._dependents[dep].append(i)
        self._rank = {member: rank for rank, member in enumerate(part.order)}
        self._inputs: list[Any] = [None] * count  # the context each part started from
        self._outputs: list[Any] = [None] * count
        self._contexts: list[Any] = [None] * count  # the context each part left
        self._scopes: list[CancelScope] = []
        self._left = count
        self._ready: deque[int] = deque()
        self._starting = False
        self._done = False

    def start(self) -> None:
        self._ready.extend(i for i, count in enumerate(self._waiting) if count == 0)
        self._start_ready()

    def _start_ready(self) -> None:
        """Start the ready parts in order; a loop, not recursion, since a part may
        end at once (a skipped ``when``, a ``dynamic`` whose condition is false)."""
        if self._starting:
            return
        self._starting = True
        try:
            while self._ready and not self._done:
                index = self._ready.popleft()
                try:
                    base = self._input_of(index)
                except Exception as exc:
                    self._fail(exc)
                    return
                self._inputs[index] = base
                scope = self._frame.scope.child()
                self._scopes.append(scope)
                self._run(
                    self._part.members[index],
                    copy.deepcopy(base),
                    self._frame.child(index).within(scope),
                    functools.partial(self._ended, index),
                )
        finally:
            self._starting = False

    def _input_of(self, index: int) -> Any:
        deps = self._part.after[index]
        if not deps:
            return self._start
        if len(deps) == 1:  # its ancestors' changes are all in that one's context already
            return self._contexts[deps[0]]
        base = copy.deepcopy(self._start)
        for ancestor in sorted(self._ancestors(index), key=self._rank.__getitem__):
            base = self._apply(base, ancestor)
        return base

    def _ancestors(self, index: int) -> set[int]:
        found: set[int] = set()
        stack = list(self._part.after[index])
        while stack:
            dep = stack.pop()
            if dep not in found:
                found.add(dep)
                stack.extend(self._part.after[dep])
        return found

    def _apply(self, target: Any, index: int) -> Any:
        """``target`` with the changes part ``index`` made to the context it started from."""
        return merge_contexts(target, self._inputs[index], [self._contexts[index]])

    def _ended(self, index: int, outcome: Outcome) -> None:
        if self._done:
            return
        if isinstance(outcome, Err):
            self._fail(outcome.error, f"part {self._part.labels[index]!r}")
            return
        self._outputs[index], self._contexts[index] = outcome.output, outcome.ctx
        self._left -= 1
        for dependent in self._dependents[index]:
            self._waiting[dependent] -= 1
            if self._waiting[dependent] == 0:
                self._ready.append(dependent)
        if self._left:
            self._start_ready()
            return
        self._done = True
        for scope in self._scopes:
            scope.dissolve()
        try:
            merged = self._ctx
            for member in self._part.order:
                merged = self._apply(merged, member)
        except Exception as exc:
            self._cont(Err(exc))
            return
        self._cont(Ok(dict(zip(self._part.labels, self._outputs, strict=True)), merged))

    def _fail(self, error: BaseException, which: str = "a part") -> None:
        """The first failure: cancel what runs, start nothing more, fail the graph."""
        self._done = True
        for scope in self._scopes:
            scope.cancel(f"{which} of graph {self._part.name!r} failed")
        self._cont(Err(error))
