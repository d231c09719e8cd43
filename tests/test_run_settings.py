"""A run's settings are recorded with it: every resume, by whatever system, runs it the same way."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    MemoryStore,
    PermanentError,
    PersistenceError,
    parallel,
    task,
)
from runtime._run_settings import RunOptions
from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)
AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP


# Issue 9: a resumed run took the resuming system's strategy (the CLI's: none).
def test_a_run_resumed_by_a_system_without_a_strategy_keeps_recording_every_step() -> None:
    store, broken = MemoryStore(), {"c"}

    def step(name: str) -> Any:
        def body(ctx: dict[str, Any]) -> str:
            if name in broken:
                raise PermanentError(f"{name} is broken")
            return name

        return task(body, name=name)

    wf = step("a").then(step("b")).then(step("c")).then(step("d")).named("abcd")
    with ActorSystem("first", store=store, checkpoint=AFTER_EACH) as first:
        failed = first.run(wf, {}, run_id="r")
        with pytest.raises(PermanentError):
            failed.result(5)
    broken.clear()
    with ActorSystem("second", store=store, workflows=[wf]) as second:  # no checkpoint=
        assert second.resume("r").result(5) == "d"
    checkpoint = store.load("r")
    assert {step: record.state for step, record in checkpoint.steps.items()} == dict.fromkeys(
        ["a", "b", "c", "d"], "Completed"
    )
    assert checkpoint.settings == {"checkpoint": "after_each_step", "max_running_steps": "256"}


def test_a_resumed_run_keeps_its_own_bound_on_steps_in_flight() -> None:
    store, broken, release = MemoryStore(), [True], threading.Event()

    def gate(ctx: Any) -> None:
        if broken[0]:
            raise PermanentError("first time")

    def wide(ctx: Any) -> None:
        release.wait(10)

    branches = [task(wide, name=f"w{i}") for i in range(6)]
    wf = task(gate, name="gate").then(parallel(*branches)).named("bounded")
    with ActorSystem("one", store=store, checkpoint=AFTER_EACH, max_running_steps=2) as one:
        failed = one.run(wf, {}, run_id="b")
        with pytest.raises(PermanentError):
            failed.result(5)
    broken[0] = False
    with ActorSystem("two", store=store, workflows=[wf], max_running_steps=None) as two:
        handle = two.resume("b")

        def running() -> list[str]:
            return [s.step for s in handle.steps() if s.state.name == "RUNNING"]

        assert wait_until(lambda: len(running()) >= 2, timeout=5)
        handle.pause()  # a message behind the dispatch of every branch: once paused, all ran
        assert wait_until(lambda: handle.paused, timeout=5)
        assert len(running()) == 2  # the run's recorded bound, not the resumer's None
        handle.unpause()
        release.set()
        handle.result(10)
    assert store.load("b").settings["max_running_steps"] == "2"


def test_recorded_options_are_read_back_and_bad_ones_refused_by_name() -> None:
    defaults = RunOptions(CheckpointStrategy.NONE, 256)
    periodic = RunOptions(CheckpointStrategy.periodic(5.0), None)
    assert RunOptions.from_record("r", periodic.to_record(), defaults=defaults) == periodic
    # Recorded by a version without settings: never fewer checkpoints than every step.
    assert RunOptions.from_record("r", {}, defaults=defaults) == RunOptions(AFTER_EACH, 256)
    with pytest.raises(PersistenceError, match="run r: unreadable recorded setting"):
        RunOptions.from_record("r", {"max_running_steps": "0"}, defaults=defaults)
    with pytest.raises(PersistenceError, match="not a recorded checkpoint strategy"):
        RunOptions.from_record("r", {"checkpoint": "often"}, defaults=defaults)


# Review of 2026-12-01: a run recorded without settings (schema 1) never got them.
def test_a_legacy_run_records_the_settings_its_first_resume_used() -> None:
    store, broken = MemoryStore(), [True, True]

    def step(ctx: Any) -> str:
        if broken[0]:
            broken[0] = broken[1]
            raise PermanentError("broken")
        return "ok"

    wf = task(lambda c: "a", name="a").then(task(step, name="b")).named("legacy")
    with ActorSystem("one", store=store, checkpoint=AFTER_EACH) as one:
        failed = one.run(wf, {}, run_id="r")
        with pytest.raises(PermanentError):
            failed.result(5)
    run = store._runs["r"]
    run.header = dataclasses.replace(run.header, settings={})  # as a v1 file migrates
    broken[1] = False
    resumer = ActorSystem(
        "two", store=store, checkpoint=CheckpointStrategy.periodic(3600), max_running_steps=2
    )
    with resumer as two:
        resumed = two.resume("r", wf)
        with pytest.raises(PermanentError):
            resumed.result(5)
    assert store.load("r").settings == {"checkpoint": "periodic:3600.0", "max_running_steps": "2"}


# Review of 2026-12-01: a fresh run under an id the store held replayed the old run's steps.
def test_a_fresh_run_may_not_reuse_the_id_of_a_recorded_run() -> None:
    store = MemoryStore()
    wf = task(lambda c: "a", name="a").named("one")
    with ActorSystem("x", store=store, checkpoint=AFTER_EACH) as system:
        assert system.run(wf, {}, run_id="r").result(5) == "a"
        with pytest.raises(ValueError, match="'r' is already in the checkpoint store"):
            system.run(wf, {}, run_id="r")
        assert store.load("r").state == "Completed"  # and the recorded run is untouched
