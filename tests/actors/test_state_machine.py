"""The node state machine: every legal transition, every illegal one."""

from __future__ import annotations

import itertools

import pytest

from actors import IllegalTransition, ManualClock, NodeState, StateChanged
from actors._state import TRANSITIONS, StateMachine

LEGAL = [(old, new) for old, targets in TRANSITIONS.items() for new in targets]
ILLEGAL = [
    (old, new)
    for old, new in itertools.product(NodeState, NodeState)
    if new not in TRANSITIONS[old]
]


def machine_in(state: NodeState, events: list[StateChanged]) -> StateMachine:
    machine = StateMachine("n1", clock=ManualClock(), emit=events.append, run_id="r1")
    path = {
        NodeState.PENDING: [],
        NodeState.RUNNING: [NodeState.RUNNING],
        NodeState.COMPLETED: [NodeState.RUNNING, NodeState.COMPLETED],
        NodeState.FAILED: [NodeState.RUNNING, NodeState.FAILED],
        NodeState.CANCELED: [NodeState.CANCELED],
    }[state]
    for step in path:
        machine.transition(step)
    events.clear()
    return machine


def test_the_transition_table_has_the_documented_shape() -> None:
    assert TRANSITIONS[NodeState.PENDING] == {NodeState.RUNNING, NodeState.CANCELED}
    assert TRANSITIONS[NodeState.RUNNING] == {
        NodeState.COMPLETED,
        NodeState.FAILED,
        NodeState.CANCELED,
    }
    assert TRANSITIONS[NodeState.FAILED] == {NodeState.RUNNING, NodeState.CANCELED}
    assert TRANSITIONS[NodeState.COMPLETED] == frozenset()
    assert TRANSITIONS[NodeState.CANCELED] == frozenset()


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=lambda s: str(s))
def test_each_legal_transition_moves_and_emits_state_changed(
    old: NodeState, new: NodeState
) -> None:
    events: list[StateChanged] = []
    machine = machine_in(old, events)
    machine.transition(new, error=ValueError("x") if new is NodeState.FAILED else None)
    assert machine.state is new
    assert len(events) == 1
    assert (events[0].step, events[0].old, events[0].new, events[0].run_id) == (
        "n1",
        old,
        new,
        "r1",
    )
    assert events[0].timestamp > 0


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=lambda s: str(s))
def test_each_illegal_transition_raises_and_changes_nothing(old: NodeState, new: NodeState) -> None:
    events: list[StateChanged] = []
    machine = machine_in(old, events)
    with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
        machine.transition(new)
    assert machine.state is old
    assert events == []


def test_failed_records_error_attempts_and_last_attempt_like_the_seed_design() -> None:
    clock = ManualClock()
    machine = StateMachine("n1", clock=clock, emit=lambda _e: None)
    machine.transition(NodeState.RUNNING)
    first = machine.last_attempt
    error = RuntimeError("disk full")
    machine.transition(NodeState.FAILED, error=error)
    clock.advance(2.0)
    machine.transition(NodeState.RUNNING)  # retry
    machine.transition(NodeState.FAILED, error=error)
    assert machine.attempts == 2
    assert machine.last_error is error
    assert machine.last_attempt == pytest.approx((first or 0) + 2.0)
