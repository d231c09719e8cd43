"""map_items as a description: argument checks, what walks see through it, its static types."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from runtime import CheckpointStrategy, CompositionError, map_items, task
from runtime.workflow import monitors, persists, tasks_of
from tests.support import ROOT, EventRecorder

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


# Well-typed uses must pass mypy --strict; each misuse must raise exactly the error its
# ignore names (strict mode reports an ignore that is not needed).
TYPED_SNIPPET = """
    from typing import Any

    from runtime import Workflow, map_items, task

    def urls(ctx: dict[str, Any]) -> list[str]:
        return [str(url) for url in ctx["urls"]]

    def size(url: str) -> int:
        return len(url)

    sizes: Workflow[dict[str, Any], list[int]] = map_items(urls, size)
    tasks: Workflow[dict[str, Any], list[int]] = map_items(urls, task(size))
    total: Workflow[dict[str, Any], int] = sizes.then(lambda ctx: 0)
    lambdas: Workflow[dict[str, Any], list[int]] = map_items(lambda ctx: ctx["urls"], size)
    collected: Workflow[dict[str, Any], list[int]] = map_items(urls, size, on_failure="collect")

    wrong_out: Workflow[dict[str, Any], list[str]] = map_items(urls, size)  # type: ignore[arg-type]
    not_a_list: Workflow[dict[str, Any], int] = map_items(urls, size)  # type: ignore[assignment]
    bad_policy = map_items(urls, size, on_failure="skip")  # type: ignore[arg-type]

    def ints(ctx: dict[str, Any]) -> list[int]:
        return [1]

    wrong_item = map_items(ints, size)  # type: ignore[misc]
"""


def test_map_items_is_typed_from_its_items_and_its_step(tmp_path: Path) -> None:
    snippet = tmp_path / "typed_map.py"
    snippet.write_text(textwrap.dedent(TYPED_SNIPPET))
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(snippet),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
