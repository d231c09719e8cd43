"""Canceling a run: the running step is asked to stop, and every step's story ends.

A retry held back (queued at max_running_steps, or parked while paused) and
then canceled still gets a terminal event.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from runtime import (
    ActorSystem,
    Canceled,
    Fixed,
    ManualClock,
    NodeState,
    RetryPolicy,
    TemporaryError,
    current_step,
    parallel,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder, gate, wait_until

pytestmark = pytest.mark.timeout(30)


def test_cancel_of_a_running_run_ends_it_canceled(system: ActorSystem) -> None:
    started = threading.Event()
    seen_cancel = threading.Event()

    def cooperative(ctx: Any) -> str:
        started.set()
        wait_until(lambda: current_step().cancel_requested, timeout=10)
        seen_cancel.set()
        return "finished anyway"

    handle = system.run(task(cooperative).then(task(lambda c: "never")), {})
    assert started.wait(5)
    handle.cancel()
    with pytest.raises(Canceled):
        handle.result(5)
    assert handle.state is NodeState.CANCELED
    assert seen_cancel.wait(5)
    assert [s.step for s in handle.steps()] == ["cooperative"]


def _story(recorder: EventRecorder, step: str) -> list[tuple[str, Any]]:
    return [
        (type(e).__name__, getattr(e, "final", None))
        for e in recorder.events
        if getattr(e, "step", None) == step
    ]


def _flaky(ctx: Any) -> None:
    raise TemporaryError("flaky broke")


# Regression (review 2026-11-27, e354e3a): it was left at Failed(final=False).
def test_a_retry_queued_at_the_cap_then_canceled_gets_a_terminal_event(
    clock: ManualClock, recorder: EventRecorder
) -> None:
    release = threading.Event()

    def block(ctx: Any) -> str:
        release.wait(10)
        return "late"

    wf = parallel(
        task(_flaky, name="flaky", retry=RetryPolicy(3, Fixed(1))), task(block, name="block")
    )
    with ActorSystem("cap-cancel", clock=clock, max_running_steps=1) as system:
        handle = system.run(wf, {}, observers=[recorder])
        recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "block")
        clock.wait_for_timers(1)  # flaky's backoff
        clock.advance(1)  # its retry is due, but `block` fills the cap: it queues
        handle.cancel()  # told after the wake-up: the coordinator sees them in this order
        with pytest.raises(Canceled):
            handle.result(timeout=10)
        release.set()
        state = {s.step: s.state for s in handle.steps()}
    story = _story(recorder, "flaky")
    print("flaky:", story, "state:", state.get("flaky"))
    assert story[-1] in {("Failed", True), ("Canceled", None)}, story


# Regression (review 2026-11-27, e354e3a): it was left at Failed(final=False).
def test_a_retry_parked_by_pause_then_canceled_gets_a_terminal_event(
    clock: ManualClock, recorder: EventRecorder
) -> None:
    wf = task(_flaky, name="flaky", retry=RetryPolicy(3, Fixed(1)))
    with ActorSystem("park-cancel", clock=clock) as system:
        handle = system.run(wf, {}, observers=[recorder])
        recorder.wait_for(lambda e: isinstance(e, ev.Retrying) and e.step == "flaky")
        clock.wait_for_timers(1)
        handle.pause()
        clock.advance(1)  # the retry is due while paused: parked
        handle.cancel()
        with pytest.raises(Canceled):
            handle.result(timeout=10)
    story = _story(recorder, "flaky")
    print("flaky:", story)
    assert story[-1] in {("Failed", True), ("Canceled", None)}, story


# Regression (review 2026-11-27, fe11a14): a canceled node's thread outlived its system.
def test_a_canceled_step_still_running_is_not_leaked_past_shutdown() -> None:
    calls: dict[str, int] = {}
    release, blocked = gate()
    started = threading.Event()

    def slow(ctx: Any) -> str:
        calls["b"] = calls.get("b", 0) + 1
        if calls["b"] == 1:
            started.set()
            blocked(ctx)  # ignores the cancel until released
        return "b"

    def a(ctx: Any) -> str:
        calls["a"] = calls.get("a", 0) + 1
        if calls["a"] == 1:
            assert started.wait(5)
            raise TemporaryError("a fails once")
        return "a"

    with ActorSystem("leak") as system:
        wf = task(a).parallel(task(slow)).retry(RetryPolicy(2, Fixed(0.01)))
        handle = system.run(wf, {})
        release.set()
        assert handle.result(10) == ("a", "b")
    leaked = [r for r in pykka.ActorRegistry.get_all() if r.actor_class.__name__ == "NodeActor"]
    for ref in leaked:
        assert ref.actor_stopped.wait(5), "a node actor outlived its system"
