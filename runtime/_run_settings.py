"""The settings that decide how a run runs, recorded with it so every resume runs it the same way.

A run started by a system with ``checkpoint=AFTER_EACH_STEP`` and resumed by
``actorflow resume`` (whose system has no strategy of its own), by
``recover=True`` or on another host, keeps recording every step: the resumer
reads these settings from the store instead of applying its own defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors import PersistenceError
from runtime.workflow import CheckpointStrategy

__all__ = ["RunOptions"]

_CHECKPOINT = "checkpoint"
_MAX_RUNNING = "max_running_steps"


@dataclass(frozen=True)
class RunOptions:
    """One run's settings (the system's defaults when it starts)."""

    checkpoint: CheckpointStrategy
    max_running_steps: int | None

    def to_record(self) -> dict[str, str]:
        limit = self.max_running_steps
        return {
            _CHECKPOINT: self.checkpoint.to_setting(),
            _MAX_RUNNING: "none" if limit is None else str(limit),
        }

    @classmethod
    def from_record(
        cls, run_id: str, record: Mapping[str, str], *, defaults: RunOptions
    ) -> RunOptions:
        """The options a run recorded; a run recorded without them (schema version 1)
        records every step from now on, unless the resumer's own strategy is set.

        Raises:
            PersistenceError: a recorded setting is unreadable (naming it).
        """
        text = record.get(_CHECKPOINT)
        try:
            if text is None:
                enabled = defaults.checkpoint.enabled
                checkpoint = defaults.checkpoint if enabled else CheckpointStrategy.AFTER_EACH_STEP
            else:
                checkpoint = CheckpointStrategy.from_setting(text, custom=defaults.checkpoint)
            limit = record.get(_MAX_RUNNING)
            if limit is None:
                max_running = defaults.max_running_steps
            elif limit == "none":
                max_running = None
            elif limit.isdigit() and int(limit) >= 1:
                max_running = int(limit)
            else:
                raise ValueError(f"not a recorded {_MAX_RUNNING}: {limit!r}")
        except ValueError as exc:
            raise PersistenceError(f"run {run_id}: unreadable recorded setting: {exc}") from exc
        return cls(checkpoint, max_running)
