"""A checkpoint strategy is recorded with its run, and read back to resume the run the same way."""

from __future__ import annotations

import pytest

from runtime import CheckpointStrategy, StepProgress


@pytest.mark.parametrize(
    "strategy",
    [
        CheckpointStrategy.NONE,
        CheckpointStrategy.AFTER_EACH_STEP,
        CheckpointStrategy.periodic(2.5),
        CheckpointStrategy.periodic(1e-3),
    ],
)
def test_a_strategy_survives_its_recorded_form(strategy: CheckpointStrategy) -> None:
    assert CheckpointStrategy.from_setting(strategy.to_setting()) == strategy


def test_a_recorded_custom_strategy_takes_the_resumers_predicate_or_records_every_step() -> None:
    def every_third(progress: StepProgress) -> bool:
        return progress.completed_steps % 3 == 0

    mine = CheckpointStrategy.custom(every_third)
    assert mine.to_setting() == "custom"
    assert CheckpointStrategy.from_setting("custom", custom=mine) is mine
    fallback = CheckpointStrategy.from_setting("custom", custom=CheckpointStrategy.NONE)
    assert fallback == CheckpointStrategy.AFTER_EACH_STEP


@pytest.mark.parametrize("text", ["", "sometimes", "periodic:", "periodic:soon", "periodic:-1"])
def test_an_unknown_recorded_strategy_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="not a recorded checkpoint strategy"):
        CheckpointStrategy.from_setting(text)
