"""Composition: each combinator on a real actor system, and bad input at composition time."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CompositionError,
    ConditionNotMet,
    NodeState,
    PermanentError,
    Workflow,
    dynamic,
    parallel,
    task,
)
from tests.support import gate

pytestmark = pytest.mark.timeout(30)


def add(key: str, value: Any) -> Workflow[dict[str, Any], Any]:
    def step(ctx: dict[str, Any]) -> Any:
        ctx[key] = value
        return value

    return task(step, name=f"set_{key}")


def test_a_task_returns_its_output(system: ActorSystem) -> None:
    assert system.run(task(lambda ctx: ctx * 2), 21).result(5) == 42


def test_the_task_decorator_works_with_and_without_options(system: ActorSystem) -> None:
    @task
    def plain(ctx: int) -> int:
        return ctx + 1

    @task(name="renamed")
    def other(ctx: int) -> int:
        return ctx + 2

    handle = system.run(plain.then(other), 1)
    assert handle.result(5) == 3
    assert [s.step for s in handle.steps()] == ["plain", "renamed"]


def test_then_runs_in_order_on_the_shared_context_and_returns_the_last_output(
    system: ActorSystem,
) -> None:
    ctx: dict[str, Any] = {}
    wf = add("a", 1).then(task(lambda c: c["a"] + 1, name="read_a"))
    assert system.run(wf, ctx).result(5) == 2
    assert ctx == {"a": 1}


def test_then_accepts_a_plain_callable(system: ActorSystem) -> None:
    assert system.run(task(lambda c: c).then(lambda c: c + 1), 1).result(5) == 2


def test_when_true_runs_the_step(system: ActorSystem) -> None:
    wf = add("x", 1).when(lambda c: True)
    assert system.run(wf, {}).result(5) == 1


def test_when_false_raises_condition_not_met_by_default(system: ActorSystem) -> None:
    handle = system.run(add("x", 1).when(lambda c: False), {})
    with pytest.raises(ConditionNotMet, match="set_x"):
        handle.result(5)
    assert handle.state is NodeState.FAILED


def test_when_false_with_skip_skips_and_outputs_none(system: ActorSystem) -> None:
    ctx: dict[str, Any] = {}
    handle = system.run(add("x", 1).when(lambda c: False, skip=True).then(add("y", 2)), ctx)
    assert handle.result(5) == 2
    assert ctx == {"y": 2}
    skipped = {s.step: s.skipped for s in handle.steps()}
    assert skipped == {"set_x": True, "set_y": False}


def test_a_raising_condition_fails_the_run_with_the_cause_attached(system: ActorSystem) -> None:
    def broken(ctx: Any) -> bool:
        raise KeyError("missing")

    with pytest.raises(PermanentError, match="condition") as info:
        system.run(add("x", 1).when(broken), {}).result(5)
    assert isinstance(info.value.__cause__, KeyError)


def test_two_parallel_half_second_tasks_finish_well_under_a_second(system: ActorSystem) -> None:
    def slow(name: str) -> Workflow[Any, str]:
        return task(lambda ctx: time.sleep(0.5) or name, name=name)

    started = time.monotonic()
    assert system.run(slow("a").parallel(slow("b")), {}).result(5) == ("a", "b")
    assert time.monotonic() - started < 0.9


def test_parallel_outputs_keep_call_order_whatever_finishes_first(system: ActorSystem) -> None:
    release, blocked = gate()
    first = task(blocked, name="first")
    second = task(lambda c: release.set() or "second", name="second")
    assert system.run(parallel(first, second), {}).result(5) == ("released", "second")


def test_parallel_merges_every_branchs_context_changes(system: ActorSystem) -> None:
    release, blocked = gate()

    def left(ctx: dict[str, Any]) -> None:
        blocked(ctx)  # finishes last, but is the earlier branch
        ctx["shared"] = "same"
        ctx["only_left"] = 1
        del ctx["drop"]

    def right(ctx: dict[str, Any]) -> None:
        ctx["shared"] = "same"  # an equal write is no conflict (different ones: see
        ctx["only_right"] = 2  # test_parallel_contexts.py)
        release.set()

    ctx = {"drop": True, "keep": 0}
    system.run(parallel(task(left), task(right)), ctx).result(5)
    assert ctx == {"keep": 0, "shared": "same", "only_left": 1, "only_right": 2}


@dataclass
class Counters:
    a: int = 0
    b: int = 0
    log: list[str] = field(default_factory=list)


def test_parallel_merges_attributes_of_an_object_context(system: ActorSystem) -> None:
    def bump_a(ctx: Counters) -> None:
        ctx.a += 1

    def bump_b(ctx: Counters) -> None:
        ctx.b += 1

    ctx = Counters()
    system.run(task(bump_a).parallel(task(bump_b)), ctx).result(5)
    assert (ctx.a, ctx.b) == (1, 1)


def test_a_failing_branch_fails_the_parallel_and_cancels_its_sibling(
    system: ActorSystem,
) -> None:
    release, blocked = gate()

    def boom(ctx: Any) -> None:
        raise PermanentError("branch broke")

    handle = system.run(task(blocked, name="waits").parallel(task(boom)), {})
    with pytest.raises(PermanentError, match="branch broke"):
        handle.result(5)
    release.set()
    states = {s.step: s.state for s in handle.steps()}
    assert states == {"waits": NodeState.CANCELED, "boom": NodeState.FAILED}


def test_nested_maps_context_in_and_output_out(system: ActorSystem) -> None:
    inner = task(lambda n: n * 10, name="times_ten")
    outer = inner.nested(lambda c: c["n"], lambda c, out: {"n": c["n"], "result": out})
    assert system.run(outer, {"n": 4}).result(5) == {"n": 4, "result": 40}


def test_a_raising_mapper_fails_the_run_with_the_cause(system: ActorSystem) -> None:
    outer = task(lambda n: n, name="inner").nested(lambda c: c["absent"], lambda c, o: o)
    with pytest.raises(PermanentError, match="ctx_mapper") as info:
        system.run(outer, {}).result(5)
    assert isinstance(info.value.__cause__, KeyError)


def test_dynamic_builds_the_workflow_from_the_context_at_run_time(system: ActorSystem) -> None:
    def factory(ctx: dict[str, Any]) -> Workflow[dict[str, Any], Any]:
        flow: Workflow[dict[str, Any], Any] = add("k0", 0)
        for i in range(1, ctx["n"]):
            flow = flow.then(add(f"k{i}", i))
        return flow

    ctx = {"n": 3}
    assert system.run(dynamic(factory), ctx).result(5) == 2
    assert ctx == {"n": 3, "k0": 0, "k1": 1, "k2": 2}
    assert system.run(dynamic(factory, lambda c: False), {"n": 3}).result(5) is None


def test_repeated_step_names_get_distinct_keys(system: ActorSystem) -> None:
    step = task(lambda c: c.append(len(c)) or len(c), name="inc")
    handle = system.run(step.then(step).then(step), [])
    assert handle.result(5) == 3
    assert [s.step for s in handle.steps()] == ["inc", "inc#2", "inc#3"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: task(42), "task(fn) must be callable"),  # type: ignore[call-overload]
        (lambda: task(lambda: 1), "exactly 1 positional"),  # type: ignore[misc]
        (lambda: task(lambda a, b: 1), "exactly 1 positional"),  # type: ignore[misc]
        (lambda: task(lambda c: c).when("yes"), "when(condition) must be callable"),
        (lambda: task(lambda c: c).when(lambda: True), "when(condition) must accept"),
        (lambda: task(lambda c: c).then(3), "then(next_step) must be a Workflow"),
        (lambda: task(lambda c: c).nested(lambda c: c, lambda o: o), "out_mapper"),
        (lambda: task(lambda c: c).retry("3"), "RetryPolicy"),
        (lambda: parallel(task(lambda c: c)), "at least 2 branches"),
        (lambda: task(lambda c: c, timeout=-1), "timeout"),
        (lambda: task(lambda c: c).named("a/b"), "named(name)"),
    ],
)
def test_bad_composition_fails_at_once_naming_the_argument(build: Any, message: str) -> None:
    with pytest.raises(CompositionError, match=re.escape(message)):
        build()
