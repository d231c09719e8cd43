"""A run's plan: how many steps it will run at most, announced as ``Planned`` events.

Starts from the workflow's static count (``planned_steps``); the interpreter
adjusts it where the structure is decided at run time: a map or dynamic part
starting, a skipped ``when`` or a used prediction. Adjustments are kept by
the position of the part that made them, and a new one at the same position
replaces the old: a composite ``.retry()`` that runs a map again re-uses the
same step keys, so it must not count the items twice.

Each change is emitted at once, on the coordinator's thread, before the part
it concerns starts any step: an observer never sees a step start that the
total it knows does not include.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors import Clock
from actors import events as ev
from runtime.workflow import StepPlan

__all__ = ["RunPlan"]


class RunPlan:
    """One run's planned total (coordinator thread only)."""

    def __init__(self, run_id: str, emit: Callable[[ev.Event], None], clock: Clock) -> None:
        self._run_id = run_id
        self._emit = emit
        self._clock = clock
        self._changes: dict[tuple[Any, ...], StepPlan] = {}
        self._steps = 0
        self._open = 0
        self._resumed = 0

    @property
    def total(self) -> int:
        return self._steps

    def start(self, plan: StepPlan) -> None:
        """The static count of the run's workflow; announced as the run's first plan."""
        self._steps, self._open = plan
        self._announce("")

    def change(self, path: tuple[Any, ...], part: str, steps: int, open_parts: int) -> None:
        """The part at ``path`` adds ``steps`` (negative: takes off) and ``open_parts``.

        Replaces what the part at ``path`` added before (kept incrementally: a
        map of 10,000 items, each with a skipped part, costs 10,000 updates).
        """
        new = StepPlan(steps, open_parts)
        old = self._changes.pop(path, StepPlan(0, 0))
        if new != (0, 0):
            self._changes[path] = new
        if new == old:
            return
        self._steps += new.steps - old.steps
        self._open += new.open - old.open
        self._announce(part)

    def resumed(self, part: str) -> None:
        """A step was taken from the checkpoint instead of run (a resume)."""
        self._resumed += 1
        self._announce(part)

    def _announce(self, part: str) -> None:
        self._emit(
            ev.Planned(
                self._run_id,
                max(0, self._steps),
                max(0, self._open),
                self._resumed,
                part,
                self._clock.wall(),
            )
        )
