"""Timeouts: ``wf.timeout(seconds)`` on a whole sub-workflow, a step's own, a result's.

Deadlines run on the injected clock; also tested: what a deadline leaves behind
when it strikes (locks, queued steps, paused runs, timers).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    CompositionError,
    Fixed,
    LockTimeout,
    ManualClock,
    ResultTimeout,
    RetryPolicy,
    SQLiteStore,
    StepTimeout,
    parallel,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder, gate

pytestmark = pytest.mark.timeout(30)


def started(step: str, attempt: int = 1) -> Any:
    return lambda e: isinstance(e, ev.Started) and e.step == step and e.attempt == attempt


def test_a_part_past_its_deadline_fails_with_step_timeout_and_its_step_is_canceled(
    manual_system: ActorSystem, clock: ManualClock, recorder: EventRecorder
) -> None:
    release = threading.Event()
    first = task(lambda ctx: None, name="first")
    slow = task(lambda ctx: release.wait(10), name="slow")
    handle = manual_system.run(first.then(slow).timeout(30), {}, observers=[recorder])
    recorder.wait_for(started("slow"))
    clock.advance(29)
    assert not handle.done()
    clock.advance(1)
    with pytest.raises(StepTimeout, match=r"longer than its 30\.0s timeout"):
        handle.result(5)
    release.set()
    recorder.wait_for(lambda e: isinstance(e, ev.Canceled) and e.step == "slow")


def test_a_part_that_finishes_in_time_leaves_no_timer_behind(
    manual_system: ActorSystem, clock: ManualClock
) -> None:
    wf = task(lambda ctx: 1, name="a").then(task(lambda ctx: 2, name="b")).timeout(60)
    assert manual_system.run(wf, {}).result(5) == 2
    assert clock.next_delay() is None


def test_timeout_inside_retry_bounds_each_attempt(
    manual_system: ActorSystem, clock: ManualClock, recorder: EventRecorder
) -> None:
    calls: list[int] = []
    release = threading.Event()

    def hangs_once(ctx: Any) -> int:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            release.wait(10)
        return len(calls)

    policy = RetryPolicy(max_attempts=2, backoff=Fixed(0), retry_on=(StepTimeout,))
    wf = task(hangs_once, name="call").then(task(lambda ctx: "done", name="after"))
    handle = manual_system.run(wf.timeout(5).retry(policy), {}, observers=[recorder])
    recorder.wait_for(started("call"))
    clock.advance(5)  # attempt 1 of the whole part times out; the retry starts it again
    recorder.wait_for(lambda e: isinstance(e, ev.Retrying) and e.attempt == 2)
    clock.advance(0)  # the retry's zero backoff
    assert handle.result(5) == "done"
    release.set()
    assert calls == [1, 2]


def test_retry_inside_timeout_shares_one_deadline_across_attempts(
    manual_system: ActorSystem, clock: ManualClock, recorder: EventRecorder
) -> None:
    def always_fails(ctx: Any) -> None:
        raise StepTimeout("slow backend")

    policy = RetryPolicy(max_attempts=10, backoff=Fixed(4), retry_on=(StepTimeout,))
    wf = task(always_fails, name="call", retry=policy).timeout(10)
    handle = manual_system.run(wf, {}, observers=[recorder])
    for attempt in (1, 2, 3):
        recorder.wait_for(lambda e, n=attempt: isinstance(e, ev.Failed) and e.attempts == n)
        clock.wait_for_timers(2)  # the deadline and this attempt's backoff
        clock.advance(4)
    with pytest.raises(StepTimeout, match=r"longer than its 10\.0s timeout"):
        handle.result(5)
    attempts = [e.attempts for e in recorder.events if isinstance(e, ev.Failed) and e.step]
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize("bad", [0, -1, "5", None, True])
def test_a_bad_timeout_is_refused_at_composition(bad: Any) -> None:
    with pytest.raises(CompositionError, match="timeout"):
        task(lambda ctx: None).timeout(bad)


def test_the_deadline_is_part_of_the_structure_fingerprint() -> None:
    wf = task(lambda ctx: None, name="a")
    assert wf.timeout(5).fingerprint() != wf.fingerprint()


def test_real_clock_deadline_cuts_a_hanging_step_short() -> None:
    release = threading.Event()
    with ActorSystem("deadline") as system:
        handle = system.run(task(lambda ctx: release.wait(10), name="hang").timeout(0.2), {})
        with pytest.raises(StepTimeout):
            handle.result(5)
        release.set()


# Regression (review 2026-11-27, c89c402): the section canceled by its deadline kept the lock.
def test_a_lock_held_inside_a_part_is_given_back_when_its_deadline_cancels_it(
    manual_system: ActorSystem, clock: ManualClock, recorder: EventRecorder
) -> None:
    release = threading.Event()
    wf = task(lambda ctx: release.wait(10), name="hold").locked("db", lease=60).timeout(5)
    handle = manual_system.run(wf, {}, observers=[recorder])
    recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "hold")
    clock.advance(5)
    with pytest.raises(StepTimeout):
        handle.result(5)
    # The lease (60 s) is far away on the manual clock: only the release frees it.
    lock = manual_system.lock("db", lease=5)
    lock.acquire(timeout=0)  # LockTimeout here: the canceled section kept the lock
    lock.release()
    release.set()


# Regression (review 2026-11-27, c89c402): a lock granted after the run ended was held.
def test_a_lock_still_awaited_when_the_deadline_passes_is_not_granted_to_the_dead_run(
    manual_system: ActorSystem, clock: ManualClock
) -> None:
    """The run fails at its deadline while its acquire waits in the lock manager; when the
    holder lets go, the lock must not go to the finished run and stay held for its lease."""
    holder = manual_system.lock("db", lease=1000)
    holder.acquire(timeout=0)
    wf = task(lambda ctx: "in", name="inside").locked("db", lease=600).timeout(5)
    handle = manual_system.run(wf, {})
    clock.wait_for_timers(2)  # the holder's lease and the run's deadline
    clock.advance(5)
    with pytest.raises(StepTimeout):
        handle.result(5)
    holder.release()
    other = manual_system.lock("db", lease=5)
    try:
        other.acquire(timeout=0)
    except LockTimeout as exc:
        print("after the run ended:", exc)
        raise
    other.release()


# From the review of 2026-11-27 (c89c402).
def test_a_queued_step_canceled_by_its_deadline_never_starts_and_the_cap_slot_frees(
    clock: ManualClock, recorder: EventRecorder
) -> None:
    release = threading.Event()

    def block(ctx: Any) -> str:
        release.wait(10)
        return "b"

    wf = parallel(
        task(block, name="outside"),
        task(lambda ctx: "q", name="queued").timeout(5),
    )
    with ActorSystem("deadline-cap", clock=clock, max_running_steps=1) as system:
        handle = system.run(wf, {}, observers=[recorder])
        recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "outside")
        clock.wait_for_timers(1)
        clock.advance(5)
        with pytest.raises(StepTimeout):
            handle.result(5)
        release.set()
    assert not [e for e in recorder.events if isinstance(e, ev.Started) and e.step == "queued"]


# From the review of 2026-11-27 (c89c402).
def test_a_paused_run_is_failed_by_its_deadline_while_paused(
    manual_system: ActorSystem, clock: ManualClock, recorder: EventRecorder
) -> None:
    """Documents today's behaviour: the deadline is wall time, pause does not stop it."""
    release = threading.Event()
    wf = task(lambda ctx: release.wait(10), name="a").then(task(lambda ctx: 2, name="b"))
    handle = manual_system.run(wf.timeout(5), {}, observers=[recorder])
    recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "a")
    handle.pause()
    release.set()
    recorder.wait_for(lambda e: isinstance(e, ev.Completed) and e.step == "a")
    clock.advance(5)  # b is parked; nothing runs
    with pytest.raises(StepTimeout):
        handle.result(5)


# Regression (review 2026-11-27, 9d9c4cb): the lease-renewal timer outlived its run.
def test_a_checkpointed_run_leaves_no_timer_behind_when_it_completes(
    clock: ManualClock, tmp_path: Any
) -> None:
    """Its lease-renewal timer outlived it: firing later, it told a dead coordinator
    (ActorDeadError logged as 'timer callback ... raised')."""
    with ActorSystem(
        "timers",
        clock=clock,
        store=SQLiteStore(tmp_path / "s.db", clock=clock),
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
    ) as system:
        wf = task(lambda ctx: 1, name="a").timeout(60)
        assert system.run(wf, {}).result(5) == 1
        print("pending timers after the run:", clock.pending(), "next in", clock.next_delay())
        assert clock.pending() == 0


def test_a_step_timeout_fails_the_step_with_step_timeout(system: ActorSystem) -> None:
    release, blocked = gate()
    handle = system.run(task(blocked, timeout=0.05), {})
    with pytest.raises(StepTimeout, match=r"longer than 0\.05s"):
        handle.result(5)
    release.set()


def test_result_past_its_deadline_raises_a_timeout_not_a_hang(system: ActorSystem) -> None:
    release, blocked = gate()
    handle = system.run(task(blocked), {})
    with pytest.raises(ResultTimeout, match=handle.id):
        handle.result(0.05)
    release.set()
    assert handle.result(5) == "released"
