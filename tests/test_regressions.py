"""Regression tests for bugs a review found (review of 2026-11-27, issues #2-#4)."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from runtime import (
    ActorSystem,
    Address,
    Fixed,
    LockTimeout,
    MemoryStore,
    NodeState,
    RemoteError,
    RetryPolicy,
    TemporaryError,
    task,
)
from runtime import CheckpointStrategy as Strategy
from runtime import events as ev
from runtime.cluster import RemoteReport
from runtime.engine._run_model import _Pause
from tests.support import EventRecorder, gate

pytestmark = pytest.mark.timeout(30)


def fails_first(name: str, calls: dict[str, int]) -> Any:
    def step(ctx: Any) -> str:
        calls[name] = calls.get(name, 0) + 1
        if calls[name] == 1:
            raise TemporaryError(f"{name} fails once")
        return name

    return task(step, name=name)


def test_an_outer_retry_reruns_a_step_that_was_canceled_while_backing_off(
    system: ActorSystem, recorder: EventRecorder
) -> None:
    # b fails and waits an hour for its retry; a's failure cancels b; the outer retry
    # must run b again on a fresh node (it used to reuse the canceled one and hang).
    calls: dict[str, int] = {}
    inner_b = fails_first("b", calls).retry(RetryPolicy(3, Fixed(3600)))
    release, blocked = gate()

    def a(ctx: Any) -> str:
        calls["a"] = calls.get("a", 0) + 1
        if calls["a"] == 1:
            blocked(ctx)  # fail only after b is backing off
            raise TemporaryError("a fails once")
        return "a"

    wf = task(a).parallel(inner_b).retry(RetryPolicy(2, Fixed(0.01)))
    handle = system.run(wf, {}, observers=[recorder])
    recorder.wait_for(lambda e: isinstance(e, ev.Retrying) and e.step == "b")
    release.set()
    assert handle.result(10) == ("a", "b")
    assert calls == {"a": 2, "b": 2}


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


def test_a_malformed_lock_request_from_the_wire_gets_an_error_and_locks_keep_working() -> None:
    with ActorSystem("keeper", listen="tcp://127.0.0.1:0", plaintext=True) as keeper:
        with ActorSystem(
            "peer", listen="tcp://127.0.0.1:0", join=[str(keeper.address)], plaintext=True
        ) as peer:
            assert peer.cluster is not None
            bad = {"op": "acquire", "name": "db", "owner": "x", "lease": "ten", "timeout": None}
            future = peer.cluster.transport.ask(Address("keeper", "$locks"), bad, timeout=5)
            with pytest.raises(RemoteError, match="lease"):
                future.result(6)
        lock = keeper.lock("db", lease=5)
        assert lock.acquire(timeout=1) > 0
        with pytest.raises(LockTimeout):
            keeper.lock("db", lease=5).acquire(timeout=0)


def test_a_bad_local_lock_argument_is_answered_not_fatal(system: ActorSystem) -> None:
    with pytest.raises(TypeError):
        system.lock("x", lease=5).acquire(timeout="soon")  # type: ignore[arg-type]
    assert system.lock("x", lease=5).acquire(timeout=1) > 0


def test_running_an_id_that_is_already_running_leaves_the_live_run_alone() -> None:
    release, blocked = gate()
    store = MemoryStore()
    with ActorSystem("dup", store=store, checkpoint=Strategy.AFTER_EACH_STEP) as system:
        first = system.run(task(blocked, name="wait"), {}, run_id="job-1")
        with pytest.raises(ValueError, match="already running"):
            system.run(task(blocked, name="wait"), {}, run_id="job-1")
        release.set()
        assert first.result(10) == "released"
    assert store.load("job-1").epoch == 1


def test_an_observer_raising_system_exit_does_not_stop_the_event_bus(
    system: ActorSystem,
) -> None:
    class Exits:
        def on_event(self, event: ev.Event) -> None:
            raise SystemExit("observer bug")

    assert system.run(task(lambda c: 1), {}, observers=[Exits()]).result(5) == 1
    assert system.run(task(lambda c: 2), {}).result(5) == 2


def test_a_result_claimed_by_a_node_that_did_not_run_the_step_is_dropped(
    system: ActorSystem,
) -> None:
    # Any member could report any run's step; only the node it was placed on may.
    release, blocked = gate()
    handle = system.run(task(blocked, name="held"), {})
    coordinator = system._coordinator_ref(handle.id)
    assert coordinator is not None
    forged = {"key": "held", "inc": 1, "attempt": 1, "state": "Completed", "mro": []}
    coordinator.tell(RemoteReport(forged, "intruder"))
    # An ask behind the tell, answered once the coordinator handled the forged report
    # (unpausing a run that is not paused changes nothing).
    coordinator.ask(_Pause(False), timeout=5)
    assert [step.state for step in handle.steps()] == [NodeState.RUNNING]  # forgery ignored
    release.set()
    assert handle.result(5) == "released"


def test_step_events_from_a_node_that_runs_none_of_the_runs_steps_are_dropped(
    recorder: EventRecorder,
) -> None:
    with (
        ActorSystem("coord", listen="tcp://127.0.0.1:0", plaintext=True) as coordinator,
        ActorSystem(
            "peer", listen="tcp://127.0.0.1:0", join=[str(coordinator.address)], plaintext=True
        ) as peer,
    ):
        assert peer.cluster is not None
        release, blocked = gate()
        handle = coordinator.run(task(blocked, name="held"), {}, observers=[recorder])
        forged = {
            "ev": "started",
            "run": handle.id,
            "step": "held",
            "attempt": 9,
            "node": "peer",
            "at": 0.0,
        }
        transport = peer.cluster.transport
        transport.tell(Address("coord", f"$run/{handle.id}"), forged)
        # An ask behind the tell on the same connection: once answered, the tell was handled.
        assert transport.ask(Address("coord", "$system"), {"op": "ping"}, timeout=5).result(6)
        assert coordinator.events.flush(5)
        assert not any(getattr(e, "attempt", 0) == 9 for e in recorder.events)
        release.set()
        assert handle.result(5) == "released"
