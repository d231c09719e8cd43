"""ActorSystem(max_running_steps=N): at most N attempts of a run in flight; the rest wait.

A step inside a locked section never queues behind a step waiting for that lock.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import ActorSystem, Canceled, LockTimeout, parallel, task
from runtime import events as ev
from tests.support import EventRecorder, wait_until

pytestmark = pytest.mark.timeout(30)


class Concurrency:
    """Tasks that count how many run at once; held until the test saw ``hold_until`` of them."""

    def __init__(self, hold_until: int) -> None:
        self.hold_until = hold_until
        self.active = self.peak = 0
        self.order: list[int] = []
        self._cond = threading.Condition()
        self._released = False

    def make(self, i: int) -> Any:
        def step(ctx: Any) -> int:
            with self._cond:
                self.active += 1
                self.peak = max(self.peak, self.active)
                self.order.append(i)
                self._cond.notify_all()
                if not self._cond.wait_for(lambda: self._released, timeout=10):
                    raise AssertionError("never released")
                self.active -= 1
            return i

        return task(step, name=f"s{i}")

    def wait_then_release(self) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.active >= self.hold_until, timeout=10), (
                self.active
            )
            self._released = True
            self._cond.notify_all()


def test_a_wide_parallel_never_has_more_than_the_cap_in_flight() -> None:
    tasks = Concurrency(hold_until=3)
    with ActorSystem("cap", max_running_steps=3) as system:
        handle = system.run(parallel(*(tasks.make(i) for i in range(10))), {})
        tasks.wait_then_release()
        assert handle.result(timeout=10) == tuple(range(10))
    assert tasks.peak == 3
    assert sorted(tasks.order) == list(range(10))


def test_without_a_cap_every_branch_runs_at_once() -> None:
    tasks = Concurrency(hold_until=10)
    with ActorSystem("uncapped", max_running_steps=None) as system:
        handle = system.run(parallel(*(tasks.make(i) for i in range(10))), {})
        tasks.wait_then_release()
        assert handle.result(timeout=10) == tuple(range(10))
    assert tasks.peak == 10


def test_queued_steps_start_in_the_order_they_became_ready() -> None:
    order: list[str] = []

    def record(ctx: Any) -> None:
        order.append(ctx["name"])

    branches = [task(lambda ctx, n=n: record({"name": n}), name=n) for n in "abcde"]
    with ActorSystem("fifo", max_running_steps=1) as system:
        system.run(parallel(*branches), {}).result(timeout=10)
    assert order == list("abcde")


def test_cancel_while_steps_are_queued_never_starts_them(recorder: EventRecorder) -> None:
    release = threading.Event()

    def block(ctx: Any) -> str:
        release.wait(10)
        return "late"

    wf = parallel(task(block, name="running"), task(block, name="q1"), task(block, name="q2"))
    with ActorSystem("cancel-queued", max_running_steps=1) as system:
        handle = system.run(wf, {}, observers=[recorder])
        recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "running")
        handle.cancel()
        with pytest.raises(Canceled):
            handle.result(timeout=10)
        release.set()
    started = {e.step for e in recorder.events if isinstance(e, ev.Started)}
    assert started == {None, "running"}


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_a_bad_cap_is_refused_naming_the_argument(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_running_steps"):
        ActorSystem("bad", max_running_steps=bad)


def locked_section_beside_a_lock_waiter(max_running: int | None) -> Any:
    seen_held = threading.Event()
    with ActorSystem("cap-lock", max_running_steps=max_running) as system:

        def inside(ctx: Any) -> str:
            # Hold the lock until the other step saw it held: a section that returned at
            # once could come and go between two of its polls (then it waited 5 s, failed).
            seen_held.wait(10)
            return "inside"

        def waits_for_the_lock(ctx: Any) -> str:
            lock = system.lock("db", lease=5)

            def held_by_the_section() -> bool:  # then acquire() below must queue
                try:
                    lock.acquire(timeout=0)
                except LockTimeout:
                    return True
                lock.release()
                return False

            assert wait_until(held_by_the_section, timeout=5), (
                "the locked section never took the lock"
            )
            seen_held.set()
            lock.acquire(timeout=3)  # the section gives it back once `inside` ran
            lock.release()
            return "after"

        wf = parallel(task(inside).locked("db", lease=5), task(waits_for_the_lock))
        return system.run(wf, {}).result(timeout=10)


# From the review of 2026-11-27 (ccea239 as xfail, fixed in 9558454).
def test_without_a_bound_the_step_waiting_for_the_lock_gets_it() -> None:
    assert locked_section_beside_a_lock_waiter(None) == ("inside", "after")


# Regression (review 2026-11-27, ccea239 as xfail, fixed in 9558454): priority inversion.
def test_with_a_bound_the_step_waiting_for_the_lock_still_gets_it() -> None:
    """max_running_steps=1: `inside` (holding the lock) must not queue behind the step
    that waits for that lock, else neither ever ends (here: LockTimeout after 3 s)."""
    assert locked_section_beside_a_lock_waiter(1) == ("inside", "after")
