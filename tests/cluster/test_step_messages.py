"""The step protocol's messages: the wire format kept, exact round trips, strict decoding."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from runtime import ActorSystem, Address, NodeState, RemoteError, task
from runtime import events as ev
from runtime.cluster import (
    SYSTEM_PATH,
    CancelStep,
    EndRun,
    NodeLost,
    RunStep,
    StepOutcome,
    run_path,
)
from runtime.cluster._messages import StepStarted, step_events
from runtime.cluster._wire import error_names
from tests.support import gate, wait_until
from transport import ProtocolError, pack, unpack

pytestmark = pytest.mark.timeout(30)

RUN_STEP = RunStep("r1", "fetch", 3, 2, "pkg.mod:fetch", {"db": 7}, b"\x91\x01")
OUTCOME = StepOutcome(
    "r1",
    "fetch",
    3,
    2,
    NodeState.FAILED,
    None,
    RemoteError("runtime.TemporaryError", "disk full", "Traceback ...\n", "w1"),
    ("runtime.TemporaryError", "runtime.WorkflowError", "Exception"),
    1.5,
    2.5,
    False,
)


def test_the_wire_format_is_the_one_the_untyped_dicts_had() -> None:
    assert RUN_STEP.encode() == {
        "op": "run_step",
        "run": "r1",
        "key": "fetch",
        "inc": 3,
        "attempt": 2,
        "task": "pkg.mod:fetch",
        "locks": {"db": 7},
        "ctx": b"\x91\x01",
    }
    assert CancelStep("r1", "fetch").encode() == {"op": "cancel_step", "run": "r1", "key": "fetch"}
    assert EndRun("r1").encode() == {"op": "end_run", "run": "r1"}
    assert NodeLost("w1", "down").encode() == {"op": "node_lost", "node": "w1", "status": "down"}
    payload = b"\x92\xc0\xc0"
    done = StepOutcome("r1", "fetch", 3, 2, NodeState.COMPLETED, payload, None, (), 1.0, 2.0)
    assert done.encode() == {
        "kind": "result",
        "key": "fetch",
        "inc": 3,
        "attempt": 2,
        "state": "Completed",
        "payload": payload,
        "started": 1.0,
        "finished": 2.0,
        "error": None,
        "mro": [],
        "refused": False,
        "changes": [],
    }
    assert done.path == run_path("r1") == "$run/r1"


@pytest.mark.parametrize(
    "message", [RUN_STEP, CancelStep("r1", "fetch"), EndRun("r1"), NodeLost("w1", "left")]
)
def test_system_messages_round_trip_through_the_codec(message: Any) -> None:
    assert type(message).decode(unpack(pack(message.encode()))) == message


def test_a_step_outcome_round_trips_and_its_error_gets_its_class_names_back() -> None:
    received = StepOutcome.decode(unpack(pack(OUTCOME.encode())), run="r1", sender="w1")
    assert dataclasses.replace(received, error=None) == dataclasses.replace(OUTCOME, error=None)
    assert received.sender == "w1"
    assert isinstance(received.error, RemoteError)
    assert (received.error.type_name, received.error.message) == (
        "runtime.TemporaryError",
        "disk full",
    )
    assert error_names(received.error) == list(OUTCOME.error_types)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"inc": None}, "inc"),
        ({"attempt": True}, "attempt"),  # a bool is no attempt number
        ({"ctx": "text"}, "ctx"),
        ({"locks": {"db": "7"}}, "locks"),
        ({"task": 1}, "task"),
    ],
)
def test_a_malformed_run_step_names_the_bad_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError, match=f"run_step: field '{field}'"):
        RunStep.decode({**RUN_STEP.encode(), **change})


@pytest.mark.parametrize("field", ["run", "key", "inc", "attempt", "task", "locks", "ctx"])
def test_a_run_step_missing_a_field_names_it(field: str) -> None:
    message = RUN_STEP.encode()
    del message[field]
    with pytest.raises(ProtocolError, match=f"run_step: missing field '{field}'"):
        RunStep.decode(message)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"state": "Done"}, "state"),
        ({"payload": "x"}, "payload"),
        ({"error": "boom"}, "error"),
        ({"mro": [1]}, "mro"),
        ({"refused": 1}, "refused"),
        ({"started": "now"}, "started"),
        ({"kind": "other"}, "kind"),
    ],
)
def test_a_malformed_step_outcome_names_the_bad_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError, match=f"field '{field}'"):
        StepOutcome.decode({**OUTCOME.encode(), **change}, run="r1", sender="w1")


RUNNING = ev.StateChanged("fetch", NodeState.PENDING, NodeState.RUNNING, 10.0, "r1")
DONE = ev.StateChanged("fetch", NodeState.RUNNING, NodeState.COMPLETED, 11.5, "r1")


def test_a_started_event_carries_the_transition_before_it_and_decodes_to_both_in_order() -> None:
    started = StepStarted("r1", "fetch", 2, "w1", 10.25, (RUNNING,))
    assert started.encode() == {
        "ev": "started",
        "run": "r1",
        "step": "fetch",
        "attempt": 2,
        "node": "w1",
        "at": 10.25,
        "changes": [["Pending", "Running", 10.0]],
    }
    assert step_events(unpack(pack(started.encode()))) == [
        RUNNING,
        ev.Started("r1", "fetch", 2, "w1", 10.25),
    ]


def test_a_result_carries_the_final_transition_and_round_trips() -> None:
    done = StepOutcome("r1", "fetch", 3, 2, NodeState.COMPLETED, b"\x92\xc0\x80", changes=(DONE,))
    assert done.encode()["changes"] == [["Running", "Completed", 11.5]]
    assert StepOutcome.decode(unpack(pack(done.encode())), run="r1", sender="w1") == done


def test_the_older_forms_are_still_accepted() -> None:
    # Nodes that sent each transition as its own ``state`` event, and no ``changes``.
    state = {"ev": "state", "run": "r1", "step": "fetch", "old": "Running", "new": "Completed"}
    assert step_events({**state, "at": 11.5}) == [DONE]
    started = StepStarted("r1", "fetch", 1, "w1", 10.25).encode()
    del started["changes"]
    assert step_events(started) == [ev.Started("r1", "fetch", 1, "w1", 10.25)]
    result = OUTCOME.encode()
    del result["changes"]
    assert StepOutcome.decode(result, run="r1", sender="w1").changes == ()


@pytest.mark.parametrize(
    "changes",
    [
        "Running",
        [["Pending", "Running"]],  # no time
        [["Pending", "Sleeping", 1.0]],  # no state
        [["Pending", "Running", "now"]],
        [["Pending", "Running", True]],
    ],
)
def test_malformed_changes_are_refused_naming_the_field(changes: Any) -> None:
    started = {**StepStarted("r1", "fetch", 1, "w1", 10.25).encode(), "changes": changes}
    with pytest.raises(ProtocolError, match="step event: field 'changes'"):
        step_events(started)
    result = {**OUTCOME.encode(), "changes": changes}
    with pytest.raises(ProtocolError, match="field 'changes'"):
        StepOutcome.decode(result, run="r1", sender="w1")


def test_only_maps_decode() -> None:
    with pytest.raises(ProtocolError, match="expected a map, got list"):
        EndRun.decode(["r1"])
    with pytest.raises(ProtocolError, match="missing field 'status'"):
        NodeLost.decode({"op": "node_lost", "node": "w1"})


def test_malformed_step_messages_from_a_peer_are_refused_and_the_run_goes_on(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    assert peer.cluster is not None
    release, blocked = gate()
    handle = coordinator.run(task(blocked, name="held"), {})
    assert wait_until(lambda: [s.state for s in handle.steps()] == [NodeState.RUNNING], 5)
    transport = peer.cluster.transport
    bad_step = {**RUN_STEP.encode(), "inc": "3"}
    with pytest.raises(RemoteError, match="run_step: field 'inc'"):
        transport.ask(Address("coord", SYSTEM_PATH), bad_step, timeout=5).result(6)
    bad_result = {**OUTCOME.encode(), "key": "held", "attempt": None}
    with pytest.raises(RemoteError, match="field 'attempt'"):
        transport.ask(Address("coord", run_path(handle.id)), bad_result, timeout=5).result(6)
    assert [step.state for step in handle.steps()] == [NodeState.RUNNING]
    release.set()
    assert handle.result(5) == "released"
