"""Pause/unpause/cancel and stats, from code and from the CLI against a live member."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import ActorSystem, Canceled, task
from runtime import events as ev
from tests.support import EventRecorder, actorflow

pytestmark = pytest.mark.timeout(60)


def gated_chain(release: threading.Event) -> Any:
    def first(ctx: Any) -> str:
        if not release.wait(10):
            raise TimeoutError("never released")
        return "first"

    return task(first).then(task(lambda ctx: "second", name="second"))


def test_a_paused_run_starts_no_new_step_until_unpaused(system: ActorSystem) -> None:
    release, recorder = threading.Event(), EventRecorder()
    handle = system.run(gated_chain(release), {}, observers=[recorder])
    recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "first")
    handle.pause()
    release.set()
    recorder.wait_for(lambda e: isinstance(e, ev.Completed) and e.step == "first")
    assert handle.paused
    assert system.stats().runs[0].paused
    assert not any(isinstance(e, ev.Started) and e.step == "second" for e in recorder.events)
    handle.unpause()
    assert handle.result(5) == "second"


def test_stats_describe_runs_actors_and_the_node_pool(system: ActorSystem) -> None:
    system.run(task(lambda c: 1), {}).result(5)
    stats = system.stats()
    assert stats.node == "test" and stats.members == {"test": "up"}
    assert [(r.state, r.steps_completed) for r in stats.runs] == [("Completed", 1)]
    assert stats.node_actors_spawned >= 1
    assert "run " in stats.render()


def test_status_and_control_from_the_cli_reach_a_live_coordinator() -> None:
    release, recorder = threading.Event(), EventRecorder()
    with ActorSystem("coord", listen="tcp://127.0.0.1:0", plaintext=True) as coordinator:
        seed = str(coordinator.address)
        handle = coordinator.run(gated_chain(release), {}, observers=[recorder])
        recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "first")
        status = actorflow("status", "--join", seed, "--plaintext")
        assert status.returncode == 0, status.stderr
        assert "node coord at tcp://127.0.0.1:" in status.stdout
        assert f"run {handle.id} Running" in status.stdout
        cancel = actorflow("control", handle.id, "cancel", "--join", seed, "--plaintext")
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        with pytest.raises(Canceled):
            handle.result(10)
        release.set()
        unknown = actorflow("control", "nope", "pause", "--join", seed, "--plaintext")
        assert unknown.returncode == 1 and "no node coordinates it" in unknown.stdout
