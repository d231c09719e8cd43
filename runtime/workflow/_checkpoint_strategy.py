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

    def to_setting(self) -> str:
        """The strategy as recorded with a run: ``none``, ``after_each_step``,
        ``periodic:<seconds>`` or ``custom`` (a predicate is code: only its kind is kept)."""
        if self.kind == "periodic":
            return f"periodic:{self.seconds!r}"
        return self.kind

    @classmethod
    def from_setting(
        cls, text: str, *, custom: CheckpointStrategy | None = None
    ) -> CheckpointStrategy:
        """The strategy a run recorded, for resuming it the same way.

        A recorded ``custom`` strategy takes the resuming system's own custom
        strategy (the same application defines it); without one, every step is
        recorded (``AFTER_EACH_STEP``): a resumed run never writes less than it did.

        Raises:
            ValueError: ``text`` is not a recorded strategy.
        """
        if text == "none":
            return cls.NONE
        if text == "after_each_step":
            return cls.AFTER_EACH_STEP
        if text == "custom":
            return custom if custom is not None and custom.kind == "custom" else cls.AFTER_EACH_STEP
        kind, _, seconds = text.partition(":")
        if kind == "periodic":
            try:
                return cls.periodic(float(seconds))
            except ValueError:
                pass
        raise ValueError(f"not a recorded checkpoint strategy: {text!r}")

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
