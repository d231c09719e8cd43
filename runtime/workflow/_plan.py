"""How many steps a workflow will run at most, read from its static structure.

A progress display needs a total before anything runs. The static tree
gives one: every task is one step (retries are attempts of the same step),
``when(skip=True)`` parts count as if they ran (the run takes them off when
it skips them), and ``map_items`` and ``dynamic`` parts count nothing until
they start, because how many items or what the factory returns is known only
then: they are counted as *open* instead, and the run adds their steps when
each starts. So the total is exact once no part is open, and only grows
while some are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from runtime.workflow._map import MapItems
from runtime.workflow._workflow import _WRAPPERS, Composite, Dynamic, Parallel, Task, Then, Workflow

__all__ = ["StepPlan", "planned_steps"]


class StepPlan(NamedTuple):
    """``steps``: task steps known now; ``open``: map and dynamic parts still to count."""

    steps: int
    open: int


def planned_steps(wf: Workflow[Any, Any]) -> StepPlan:
    """The steps of ``wf`` known before it runs, and its parts counted only at run time.

    Iterative, like ``_walk``: a 10,000-step chain needs no deep recursion.
    """
    steps = open_parts = 0
    stack: list[Workflow[Any, Any]] = [wf]
    while stack:
        node = stack.pop()
        if isinstance(node, Task):
            steps += 1
        elif isinstance(node, MapItems | Dynamic):
            open_parts += 1  # items or the generated part: known when it starts
        elif isinstance(node, Then):
            stack.extend(node.steps)
        elif isinstance(node, Parallel):
            stack.extend(node.branches)
        elif isinstance(node, _WRAPPERS):
            stack.append(node.inner)
        elif isinstance(node, Composite):
            stack.extend(node.parts())
    return StepPlan(steps, open_parts)
