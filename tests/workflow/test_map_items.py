"""map_items as a description: argument checks, what walks see through it, its static types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime import CheckpointStrategy, CompositionError, map_items, task
from runtime.workflow import monitors, persists, tasks_of
from tests.support import EventRecorder
from tests.workflow.mypy_check import check

pytestmark = pytest.mark.timeout(60)


def items_of(ctx: dict[str, Any]) -> list[int]:
    return list(ctx["items"])


def double(item: int) -> int:
    return item * 2


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: map_items("items", double), r"map_items\(items\) must be callable"),
        (lambda: map_items(lambda a, b: a, double), r"map_items\(items\) must accept exactly 1"),
        (lambda: map_items(items_of, 42), r"map_items\(step\) must be a Workflow or a callable"),
        (lambda: map_items(items_of, lambda a, b: a), r"task\(fn\) must accept exactly 1"),
        (lambda: map_items(items_of, double, on_failure="skip"), r"on_failure\) must be one of"),
        (lambda: map_items(items_of, double, name="a/b"), r"map_items\(name\) must be non-empty"),
        (lambda: map_items(items_of, double, name=""), r"map_items\(name\) must be non-empty"),
    ],
)
def test_bad_arguments_fail_at_composition_naming_the_argument(build: Any, message: str) -> None:
    with pytest.raises(CompositionError, match=message):
        build()


def test_the_part_is_named_after_its_step_unless_named() -> None:
    assert map_items(items_of, double).name == "map(double)"
    assert map_items(items_of, task(double), name="doubles").name == "doubles"


def test_walks_see_the_per_item_part() -> None:
    watcher = EventRecorder()
    inner = task(double).monitored(watcher).checkpoint(CheckpointStrategy.AFTER_EACH_STEP)
    wf = task(items_of).then(map_items(items_of, inner))
    assert set(tasks_of(wf)) == {items_of, double}
    assert monitors(wf) == [watcher]
    assert persists(wf, CheckpointStrategy.NONE)
    assert not persists(map_items(items_of, double), CheckpointStrategy.NONE)


def test_the_fingerprint_changes_with_the_per_item_part() -> None:
    def triple(item: int) -> int:
        return item * 3

    same = map_items(items_of, double).fingerprint()
    assert map_items(items_of, double).fingerprint() == same
    assert map_items(items_of, triple).fingerprint() != same


@pytest.mark.timeout(120)
def test_mypy_infers_the_output_of_a_map_and_reports_the_mistakes(tmp_path: Path) -> None:
    """``map_items_types.py`` must pass ``mypy --strict`` (its ``assert_type`` calls fail
    when an inferred type is wrong); ``map_items_errors.py`` must fail on exactly its
    lines marked ``# error``, which proves the check bites."""
    check("map_items_types.py", "map_items_errors.py", tmp_path / "mypy_cache")
