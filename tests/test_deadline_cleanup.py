"""wf.timeout(seconds) with locks, pause, and a held-back step (review)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import ActorSystem, LockTimeout, ManualClock, StepTimeout, parallel, task
from runtime import events as ev
from tests.support import EventRecorder

pytestmark = pytest.mark.timeout(30)


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


def test_a_checkpointed_run_leaves_no_timer_behind_when_it_completes(
    clock: ManualClock, tmp_path: Any
) -> None:
    """Its lease-renewal timer outlived it: firing later, it told a dead coordinator
    (ActorDeadError logged as 'timer callback ... raised')."""
    from runtime import CheckpointStrategy, SQLiteStore

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
