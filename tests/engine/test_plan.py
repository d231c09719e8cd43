"""The planned total of a run: static from the workflow, grown by maps and dynamic parts,
shrunk by skipped parts, announced as ``Planned`` events before the steps they count."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    Fixed,
    MemoryStore,
    PermanentError,
    RetryPolicy,
    TemporaryError,
    dynamic,
    map_items,
    task,
)
from runtime import events as ev
from runtime.workflow import StepPlan, planned_steps
from tests.support import EventRecorder

pytestmark = pytest.mark.timeout(30)
AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP


def one(ctx: Any) -> int:
    return 1


def plans(recorder: EventRecorder) -> list[tuple[int, int, str]]:
    return [(e.total, e.open, e.part) for e in recorder.events if isinstance(e, ev.Planned)]


def test_static_counts_of_a_chain_a_parallel_and_their_open_parts() -> None:
    chain = task(one, name="a").then(task(one, name="b")).then(task(one, name="c"))
    assert planned_steps(chain) == StepPlan(3, 0)
    fan = task(one, name="a").parallel(task(one, name="b"), task(one, name="c"))
    assert planned_steps(fan.then(task(one, name="d"))) == (4, 0)
    retried = task(one).retry(RetryPolicy(3, Fixed(0))).when(lambda c: False, skip=True)
    assert planned_steps(retried) == (1, 0)  # retries are attempts; a when counts at most
    mapped = task(one).then(map_items(lambda c: [1, 2], one)).then(dynamic(lambda c: chain))
    assert planned_steps(mapped) == (1, 2)


def test_a_chain_is_planned_once_before_its_first_step_starts(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    wf = task(one, name="a").then(task(one, name="b")).then(task(one, name="c"))
    system.run(wf, {}, observers=[recorder]).result(5)
    assert plans(recorder) == [(3, 0, "")]
    names = recorder.names(run_level=True)
    assert names.index("Planned:-") < names.index("Started:a")


def test_a_parallel_counts_every_branch(system: ActorSystem, recorder: EventRecorder) -> None:
    wf = task(one, name="a").then(task(one, name="b").parallel(task(one, name="c")))
    system.run(wf, {}, observers=[recorder]).result(5)
    assert plans(recorder) == [(3, 0, "")]


def test_a_skipped_when_takes_its_steps_off_the_total(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    skipped = task(one, name="b").then(task(one, name="c")).when(lambda c: False, skip=True)
    kept = task(one, name="d").when(lambda c: True, skip=True)
    wf = task(one, name="a").then(skipped).then(kept)
    system.run(wf, {}, observers=[recorder]).result(5)
    assert plans(recorder) == [(4, 0, ""), (2, 0, "b>c?")]


def test_a_map_over_n_items_grows_the_total_by_n_when_it_starts(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    wf = task(one, name="first").then(map_items(lambda c: c["items"], one, name="each"))
    assert system.run(wf, {"items": list(range(7))}, observers=[recorder]).result(5) == [1] * 7
    assert plans(recorder) == [(1, 1, ""), (8, 0, "each")]
    events = recorder.events
    grown_at = next(i for i, e in enumerate(events) if isinstance(e, ev.Planned) and e.part)
    items = [
        i
        for i, e in enumerate(events)
        if isinstance(e, ev.Started) and (e.step or "")[:4] == "one["
    ]
    assert len(items) == 7 and grown_at < min(items)  # counted before any item starts


def test_a_dynamic_part_adds_the_steps_of_what_it_generates(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    generated = task(one, name="x").then(task(one, name="y"))
    wf = task(one, name="a").then(dynamic(lambda c: generated, name="gen"))
    wf = wf.then(dynamic(lambda c: generated, lambda c: False, name="never"))
    system.run(wf, {}, observers=[recorder]).result(5)
    assert plans(recorder) == [(1, 2, ""), (3, 1, "gen"), (3, 0, "never")]


def test_a_retried_map_does_not_count_its_items_twice(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    calls = {"n": 0}

    def flaky_once(item: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryError("once")
        return item

    part = map_items(lambda c: [1, 2, 3], task(flaky_once, name="f"), name="m")
    wf = part.retry(RetryPolicy(2, Fixed(0.01)))
    system.run(wf, {}, observers=[recorder]).result(5)
    assert plans(recorder) == [(0, 1, ""), (3, 0, "m")]  # the second start changes nothing


def test_a_resume_counts_the_steps_taken_from_the_checkpoint(recorder: EventRecorder) -> None:
    failing = {"on": True}

    def second(ctx: Any) -> int:
        if failing["on"]:
            raise PermanentError("not yet")
        return 2

    store = MemoryStore()
    wf = task(one, name="a").then(task(second, name="b")).then(task(one, name="c"))
    with ActorSystem("plan-resume", store=store, checkpoint=AFTER_EACH) as first:
        handle = first.run(wf, {})
        with pytest.raises(PermanentError):
            handle.result(5)
        run_id = handle.id
    failing["on"] = False
    with ActorSystem("plan-resume", store=store, checkpoint=AFTER_EACH) as again:
        again.resume(run_id, wf, observers=[recorder]).result(5)
    resumed = [e.resumed for e in recorder.events if isinstance(e, ev.Planned)]
    assert resumed == [0, 1]  # step a came from the checkpoint
