"""ActorSystem: refusing runs it cannot take (shut down, or a run id already running)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    MemoryStore,
    PermanentError,
    SystemShutDown,
    task,
)
from tests.support import gate, wait_until

pytestmark = pytest.mark.timeout(30)


def test_running_on_a_shut_down_system_raises_a_clear_error() -> None:
    system = ActorSystem("short-lived")
    system.shutdown()
    with pytest.raises(SystemShutDown, match="short-lived"):
        system.run(task(lambda c: c), 1)


# Regression (review 2026-11-27, fe11a14): a duplicate run id's claim fenced off the live run.
def test_running_an_id_that_is_already_running_leaves_the_live_run_alone() -> None:
    release, blocked = gate()
    store = MemoryStore()
    with ActorSystem("dup", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP) as system:
        first = system.run(task(blocked, name="wait"), {}, run_id="job-1")
        with pytest.raises(ValueError, match="already running"):
            system.run(task(blocked, name="wait"), {}, run_id="job-1")
        release.set()
        assert first.result(10) == "released"
    assert store.load("job-1").epoch == 1


# Issue 9: every finished run's handle stayed in memory, and stats() grew with them.
def test_only_the_newest_finished_runs_stay_in_memory() -> None:
    with ActorSystem("bounded", keep_finished=5) as bounded:
        ids = []
        for _ in range(20):  # one after another: they finish in the order they started
            handle = bounded.run(task(lambda c: "ok"), {})
            assert handle.result(5) == "ok"
            ids.append(handle.id)
        assert wait_until(lambda: len(bounded.stats().runs) == 5, timeout=5)
        assert [run.run_id for run in bounded.stats().runs] == ids[-5:]
        with pytest.raises(KeyError, match="most recently finished"):
            bounded.handle(ids[0])


def test_keep_finished_is_checked() -> None:
    with pytest.raises(ValueError, match="keep_finished must be an int >= 0, got -1"):
        ActorSystem("bad", keep_finished=-1)


def test_a_negative_result_timeout_is_refused_naming_it(system: ActorSystem) -> None:
    handle = system.run(task(lambda c: "ok"), {})
    with pytest.raises(
        ValueError, match=r"result\(timeout\) must be None or a number >= 0, got -1"
    ):
        handle.result(timeout=-1)
    assert handle.result(5) == "ok"


# Review of 2026-12-01: a run resumed in the same system was counted twice, and its new
# handle dropped as if it were the old one.
def test_a_run_resumed_in_the_same_system_is_kept_as_the_newest_finished() -> None:
    broken = [True]

    def step(ctx: Any) -> str:
        if broken[0]:
            raise PermanentError("first time")
        return "ok"

    wf = task(step, name="s").named("wf")
    with ActorSystem(
        "k", store=MemoryStore(), checkpoint=CheckpointStrategy.AFTER_EACH_STEP, keep_finished=1
    ) as system:
        failed = system.run(wf, {}, run_id="r")
        with pytest.raises(PermanentError):
            failed.result(5)
        broken[0] = False
        resumed = system.resume("r", wf)
        assert resumed.result(5) == "ok"
        other = system.run(task(lambda c: 1), {})  # finishes after r: r is forgotten now
        assert other.result(5) == 1
        assert wait_until(lambda: len(system.stats().runs) == 1, timeout=5)
        assert system.handle(other.id).done()
        with pytest.raises(KeyError):
            system.handle("r")
