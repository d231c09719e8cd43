"""A ``map_items`` part in flight: one part per item, outputs in item order.

Every item's part is started at once, each on its own copy of its item, in
one cancel scope; the attempt table queues the steps beyond
``max_running_steps``, so 10,000 items start 10,000 steps only as earlier
ones end. Each item's path carries an ``ItemIndex``, which the interpreter's
step keys turn into ``[index]``: ``fetch[7]`` is the same step in every run
and every resume, whatever order the items finish in.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.engine._frame import Frame
from runtime.engine._outcome import Continuation, Err, Ok, Outcome
from runtime.workflow import ItemsFailed, MapItems, Workflow

__all__ = ["ItemIndex", "MapRun", "item_suffix", "read_items"]

RunPart = Callable[[Workflow[Any, Any], Any, Frame, Continuation], None]


@dataclass(frozen=True)
class ItemIndex:
    """A path element: what follows runs for item ``index`` of the enclosing map."""

    index: int


def item_suffix(path: tuple[Any, ...]) -> str:
    """``[i]`` per enclosing map item (``[2][5]`` in a map inside a map), else ``""``."""
    return "".join(f"[{p.index}]" for p in path if type(p) is ItemIndex)


def read_items(part: MapItems, ctx: Any) -> list[Any]:
    """The items, deep-copied: a step changing its item must not change ``ctx``."""
    items = part.items(ctx)
    if isinstance(items, str | bytes | Mapping):
        raise TypeError(f"expected a sequence of items, got {type(items).__name__}")
    return copy.deepcopy(list(items))


class MapRun:
    """Runs one map part (coordinator thread only); ``cont`` gets the list or the error."""

    def __init__(self, part: MapItems, ctx: Any, frame: Frame, cont: Continuation) -> None:
        self._part = part
        self._ctx = ctx  # handed on unchanged: items run on copies of their items
        self._frame = frame
        self._cont = cont
        self._scope = frame.scope.child()
        self._outputs: list[Any] = []
        self._pending = 0
        self._failures: dict[int, BaseException] = {}
        self._done = False

    def start(self, items: list[Any], run: RunPart) -> None:
        """Start every item's part, in item order (their step keys are made in that order)."""
        if not items:
            self._finish(Ok([], self._ctx))
            return
        self._outputs = [None] * len(items)
        self._pending = len(items)
        inner, base = self._part.inner, self._frame
        for index, item in enumerate(items):
            if self._done:  # an item failed before the others started: they never do
                return
            path = (*base.path, ItemIndex(index))
            frame = dataclasses.replace(base, path=path, scope=self._scope)
            run(inner, item, frame, functools.partial(self._item_done, index))

    def _item_done(self, index: int, outcome: Outcome) -> None:
        if self._done:
            return
        if isinstance(outcome, Err):
            if self._part.on_failure == "stop":
                self._scope.cancel(f"an item of {self._part.name!r} failed")
                self._finish(outcome)
                return
            self._failures[index] = outcome.error
        else:
            self._outputs[index] = outcome.output
        self._pending -= 1
        if self._pending:
            return
        if self._failures:
            total = len(self._outputs)
            failed = ItemsFailed(self._part.name, total, self._failures, self._outputs)
            self._finish(Err(failed))
        else:
            self._finish(Ok(self._outputs, self._ctx))

    def _finish(self, outcome: Outcome) -> None:
        self._done = True
        if not self._scope.canceled:
            self._scope.dissolve()
        self._cont(outcome)
