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
from runtime.workflow._workflow import Dynamic, Task, Workflow, _walk

__all__ = ["StepPlan", "planned_steps"]


class StepPlan(NamedTuple):
    """``steps``: task steps known now; ``open``: map and dynamic parts still to count."""

    steps: int
    open: int


def planned_steps(wf: Workflow[Any, Any]) -> StepPlan:
    """The steps of ``wf`` known before it runs, and its parts counted only at run time.

    A map's per-item part is not walked into: its items are counted when it starts.
    """
    parts = _walk(wf, opaque=(MapItems,))
    steps = sum(1 for part in parts if isinstance(part, Task))
    open_parts = sum(1 for part in parts if isinstance(part, MapItems | Dynamic))
    return StepPlan(steps, open_parts)
