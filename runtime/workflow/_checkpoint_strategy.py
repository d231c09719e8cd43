"""When a run writes its checkpoints: a strategy is part of a workflow's description."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = ["CheckpointStrategy", "StepProgress"]


@dataclass(frozen=True)
class StepProgress:
    """What a ``custom`` checkpoint predicate is shown after each completed step."""

    run_id: str
    step: str
    completed_steps: int
    seconds_since_checkpoint: float


@dataclass(frozen=True)
class CheckpointStrategy:
    """When a run writes its checkpoint: ``NONE``, ``AFTER_EACH_STEP``, ``periodic``, ``custom``.

    ``periodic(s)`` writes at the first step boundary at least ``s`` seconds
    after the previous write; ``custom(predicate)`` when ``predicate(progress)``
    is true. Whatever the strategy (but ``NONE``), a run's start, a step that
    fails for good, and the run's end are always written.
    """

    kind: str
    seconds: float = 0.0
    predicate: Callable[[StepProgress], bool] | None = field(default=None, compare=False)

    NONE: ClassVar[CheckpointStrategy]
    AFTER_EACH_STEP: ClassVar[CheckpointStrategy]

    @classmethod
    def periodic(cls, seconds: float) -> CheckpointStrategy:
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"periodic(seconds) must be a number > 0, got {seconds!r}")
        return cls("periodic", float(seconds))

    @classmethod
    def custom(cls, predicate: Callable[[StepProgress], bool]) -> CheckpointStrategy:
        if not callable(predicate):
            raise TypeError(f"custom(predicate) must be callable, got {predicate!r}")
        return cls("custom", predicate=predicate)

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def due(self, progress: StepProgress) -> bool:
        """Whether a completed step should be written now."""
        if self.kind == "after_each_step":
            return True
        if self.kind == "periodic":
            return progress.seconds_since_checkpoint >= self.seconds
        if self.kind == "custom" and self.predicate is not None:
            return bool(self.predicate(progress))
        return False


CheckpointStrategy.NONE = CheckpointStrategy("none")
CheckpointStrategy.AFTER_EACH_STEP = CheckpointStrategy("after_each_step")
