"""Parallel contexts on real actor systems: no branch's write is lost in silence.

Branches that change the same key to different values fail the run naming
the key and the branches, unless ``merge={key: fn}`` combines the values (in
call order). The outcome never depends on the order the branches finished in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CompositionError,
    Fixed,
    NodeState,
    PermanentError,
    RetryPolicy,
    TemporaryError,
    Workflow,
    parallel,
    task,
)
from runtime.events import Completed, Event

pytestmark = pytest.mark.timeout(30)

Ctx = dict[str, Any]


def page(i: int) -> Workflow[Ctx, int]:
    """The issue's case: each branch appends its page to a shared list."""

    def fetch(ctx: Ctx) -> int:
        ctx.setdefault("pages", []).append(i)
        return i

    return task(fetch, name=f"page{i}")


def concat(values: list[list[Any]]) -> list[Any]:
    """The usual merge function for a list the branches append to."""
    return [item for value in values for item in value]


class ReverseOrder:
    """Branch ``i`` of ``page_after`` finishes only once branch ``i + 1`` has completed.

    The observer opens branch ``i``'s gate on the ``Completed`` event of branch
    ``i + 1``, which the coordinator emits as it takes that branch's result: so
    the coordinator gets the results strictly last branch first.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.gates = [threading.Event() for _ in range(count)]
        self.gates[-1].set()
        self.completed: list[str] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, Completed) and event.step and event.step.startswith("page"):
            self.completed.append(event.step)
            index = int(event.step.removeprefix("page"))
            if index > 0:
                self.gates[index - 1].set()

    def page_after(self, i: int) -> Workflow[Ctx, int]:
        def fetch(ctx: Ctx) -> int:
            if not self.gates[i].wait(10):
                raise TimeoutError(f"page{i} was never released")
            ctx.setdefault("pages", []).append(i)
            return i

        return task(fetch, name=f"page{i}")


def test_branches_writing_one_key_differently_fail_naming_the_key_and_branches(
    system: ActorSystem,
) -> None:
    ctx: Ctx = {"keep": 0}
    handle = system.run(parallel(*[page(i) for i in range(5)]), ctx)
    with pytest.raises(PermanentError) as info:
        handle.result(5)
    message = str(info.value)
    assert "key 'pages'" in message
    assert "branches 'page0', 'page1', 'page2', 'page3' and 'page4'" in message
    assert "merge=" in message  # says how to combine them instead
    assert handle.state is NodeState.FAILED
    assert {s.step: s.state for s in handle.steps()} == {
        f"page{i}": NodeState.COMPLETED for i in range(5)
    }
    assert ctx == {"keep": 0}  # nothing half-merged


def test_a_merge_function_gets_every_page_in_call_order_whatever_finishes_first(
    system: ActorSystem,
) -> None:
    order = ReverseOrder(5)
    calls: list[list[Any]] = []

    def pages(values: list[Any]) -> list[Any]:
        calls.append(values)
        return concat(values)

    wf = parallel(*[order.page_after(i) for i in range(5)], merge={"pages": pages})
    ctx: Ctx = {}
    assert system.run(wf, ctx, observers=[order]).result(5) == (0, 1, 2, 3, 4)
    assert order.completed == ["page4", "page3", "page2", "page1", "page0"]
    assert calls == [[[0], [1], [2], [3], [4]]]
    assert ctx == {"pages": [0, 1, 2, 3, 4]}


def test_the_conflict_is_the_same_whatever_order_the_branches_finish_in(
    system: ActorSystem,
) -> None:
    order = ReverseOrder(3)
    handle = system.run(parallel(*[order.page_after(i) for i in range(3)]), {}, observers=[order])
    with pytest.raises(PermanentError, match="branches 'page0', 'page1' and 'page2' wrote"):
        handle.result(5)


def test_the_merge_function_gets_only_the_branches_that_changed_the_key(
    system: ActorSystem,
) -> None:
    calls: list[list[Any]] = []

    def total(values: list[int]) -> int:
        calls.append(values)
        return sum(values)

    def quiet(ctx: Ctx) -> None:
        ctx["other"] = True

    def add(n: int) -> Callable[[Ctx], None]:
        def step(ctx: Ctx) -> None:
            ctx["count"] = n

        step.__name__ = f"add{n}"
        return step

    ctx: Ctx = {"count": 0}
    wf = task(add(1)).parallel(quiet, add(2), merge={"count": total})
    system.run(wf, ctx).result(5)
    assert calls == [[1, 2]]
    assert ctx == {"count": 3, "other": True}


def test_equal_writes_do_not_conflict_and_distinct_keys_all_land(system: ActorSystem) -> None:
    def left(ctx: Ctx) -> None:
        ctx["status"] = "ok"
        ctx["left"] = 1
        ctx["seen"].append("x")

    def right(ctx: Ctx) -> None:
        ctx["status"] = "ok"
        ctx["right"] = 2
        ctx["seen"].append("x")

    ctx: Ctx = {"status": None, "seen": []}
    system.run(parallel(left, right), ctx).result(5)
    assert ctx == {"status": "ok", "seen": ["x"], "left": 1, "right": 2}


def test_a_branch_removing_a_key_another_changed_is_a_conflict(system: ActorSystem) -> None:
    def drop(ctx: Ctx) -> None:
        del ctx["token"]

    def renew(ctx: Ctx) -> None:
        ctx["token"] = "new"

    merge = {"token": lambda values: values[-1]}  # merges values, cannot merge a removal
    ctx: Ctx = {"token": "old"}
    handle = system.run(parallel(task(drop), task(renew), merge=merge), ctx)
    with pytest.raises(PermanentError, match=r"branch 'drop' removed key 'token', which branch"):
        handle.result(5)
    assert ctx == {"token": "old"}


def test_branches_removing_the_same_key_agree(system: ActorSystem) -> None:
    def drop(ctx: Ctx) -> None:
        del ctx["token"]

    ctx: Ctx = {"token": "old", "keep": 1}
    system.run(parallel(task(drop, name="a"), task(drop, name="b")), ctx).result(5)
    assert ctx == {"keep": 1}


@dataclass
class Report:
    title: str = ""
    lines: list[str] = field(default_factory=list)
    done: int = 0


def test_an_object_context_conflicts_on_an_attribute_and_merges_with_a_function(
    system: ActorSystem,
) -> None:
    def intro(ctx: Report) -> None:
        ctx.lines.append("intro")
        ctx.done = 1

    def body(ctx: Report) -> None:
        ctx.lines.append("body")
        ctx.done = 1
        ctx.title = "Report"

    failed = system.run(parallel(task(intro), task(body)), Report())
    with pytest.raises(PermanentError, match=r"branches 'intro' and 'body' .* attribute 'lines'"):
        failed.result(5)

    ctx = Report()
    merged = parallel(task(intro), task(body), merge={"lines": concat})
    system.run(merged, ctx).result(5)
    assert ctx == Report(title="Report", lines=["intro", "body"], done=1)


def test_a_whole_value_context_that_branches_change_differently_conflicts(
    system: ActorSystem,
) -> None:
    def one(ctx: list[int]) -> None:
        ctx.append(1)

    def two(ctx: list[int]) -> None:
        ctx.append(2)

    handle = system.run(parallel(one, two), [])
    with pytest.raises(PermanentError, match=r"branches 'one' and 'two' wrote .* the context"):
        handle.result(5)


def test_every_conflicting_key_is_named_and_same_named_branches_by_position(
    system: ActorSystem,
) -> None:
    def stamp(ctx: Ctx) -> None:
        ctx["a"] = ctx["b"] = object()

    handle = system.run(parallel(task(stamp), task(stamp)), {})
    with pytest.raises(PermanentError) as info:
        handle.result(5)
    assert "branches 'stamp' (branch 0) and 'stamp' (branch 1)" in str(info.value)
    assert "key 'a'" in str(info.value)
    assert "key 'b'" in str(info.value)


def test_a_merge_function_that_raises_fails_the_run_with_it_as_cause(
    system: ActorSystem,
) -> None:
    def broken(values: list[Any]) -> Any:
        raise KeyError("no")

    handle = system.run(parallel(page(0), page(1), merge={"pages": broken}), {})
    with pytest.raises(PermanentError, match="merge function for key 'pages' raised") as info:
        handle.result(5)
    assert isinstance(info.value.__cause__, KeyError)


def test_a_conflict_inside_a_retried_part_is_permanent_and_not_retried(
    system: ActorSystem,
) -> None:
    runs: list[int] = []

    def counted(i: int) -> Workflow[Ctx, int]:
        def fetch(ctx: Ctx) -> int:
            runs.append(i)
            ctx.setdefault("pages", []).append(i)
            return i

        return task(fetch, name=f"page{i}")

    wf = parallel(counted(0), counted(1)).retry(RetryPolicy(3, Fixed(0)))
    with pytest.raises(PermanentError, match="key 'pages'"):
        system.run(wf, {}).result(5)
    assert sorted(runs) == [0, 1]

    runs.clear()  # a policy that retries anything meets the same conflict each time
    everything = RetryPolicy(3, Fixed(0), retry_on=lambda error: True)
    with pytest.raises(PermanentError, match="key 'pages'"):
        system.run(parallel(counted(0), counted(1)).retry(everything), {}).result(5)
    assert sorted(runs) == [0, 0, 0, 1, 1, 1]


def test_a_retried_parallel_merges_only_its_last_attempt(system: ActorSystem) -> None:
    attempts: list[int] = []

    def flaky(ctx: Ctx) -> int:
        ctx.setdefault("pages", []).append(2)
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise TemporaryError("first attempt fails after writing")
        return 2

    pages = {"pages": concat}
    wf = parallel(page(0), page(1), task(flaky), merge=pages).retry(RetryPolicy(2, Fixed(0)))
    # a retry runs each attempt on a copy of its context: read the merged one downstream
    read = task(lambda ctx: (ctx["pages"], len(attempts)), name="read")
    assert system.run(wf.then(read), {}).result(5) == ([0, 1, 2], 2)


@pytest.mark.parametrize(
    ("merge", "message"),
    [
        (["pages"], "must be a mapping"),
        ({1: sum}, "keys must be str"),
        ({"pages": 3}, "must be callable"),
        ({"pages": lambda a, b: a}, "exactly 1 positional"),
    ],
)
def test_a_bad_merge_option_fails_at_composition(merge: Any, message: str) -> None:
    with pytest.raises(CompositionError, match=message):
        parallel(page(0), page(1), merge=merge)
    with pytest.raises(CompositionError, match=message):
        page(0).parallel(page(1), merge=merge)
