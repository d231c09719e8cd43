"""ActorSystem(max_running_steps=N): at most N attempts of a run in flight; the rest wait."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import ActorSystem, Canceled, parallel, task
from runtime import events as ev
from tests.support import EventRecorder

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
