"""A member speaks only for the steps placed on it: forged results and step events are dropped."""

from __future__ import annotations

import pytest

from runtime import ActorSystem, Address, NodeState, task
from runtime.cluster import SYSTEM_PATH, StepOutcome, run_path
from runtime.engine import pause_run
from tests.support import EventRecorder, gate, wait_until

pytestmark = pytest.mark.timeout(30)


# Regression (review 2026-11-27, 3d6d65c): any member could report any step's result.
def test_a_result_claimed_by_a_node_that_did_not_run_the_step_is_dropped(
    system: ActorSystem,
) -> None:
    # Any member could report any run's step; only the node it was placed on may.
    release, blocked = gate()
    handle = system.run(task(blocked, name="held"), {})
    coordinator = system._coordinator_ref(handle.id)
    assert coordinator is not None
    forged = StepOutcome(handle.id, "held", 1, 1, NodeState.COMPLETED, sender="intruder")
    coordinator.tell(forged)
    # A pause behind the tell (one mailbox, in order): once the run reads paused, the
    # coordinator handled the forged report. Pausing lets the running step go on.
    pause_run(coordinator, True)
    assert wait_until(lambda: handle.paused, timeout=5)
    assert [step.state for step in handle.steps()] == [NodeState.RUNNING]  # forgery ignored
    pause_run(coordinator, False)
    assert wait_until(lambda: not handle.paused, timeout=5)
    release.set()
    assert handle.result(5) == "released"


# Regression (review 2026-11-27, ef6ce48): any member could send a run's step events.
def test_step_events_from_a_node_that_runs_none_of_the_runs_steps_are_dropped(
    recorder: EventRecorder, coordinator_and_peer: tuple[ActorSystem, ActorSystem]
) -> None:
    coordinator, peer = coordinator_and_peer
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
    transport.tell(Address("coord", run_path(handle.id)), forged)
    # An ask behind the tell on the same connection: once answered, the tell was handled.
    assert transport.ask(Address("coord", SYSTEM_PATH), {"op": "ping"}, timeout=5).result(6)
    assert coordinator.events.flush(5)
    assert not any(getattr(e, "attempt", 0) == 9 for e in recorder.events)
    release.set()
    assert handle.result(5) == "released"
