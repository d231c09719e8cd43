"""The dispatch queue: per-sender FIFO, senders round-robin, bounds per sender, local barriers;
refusals answered without a traceback."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from transport import ActorNotFound, Overloaded, ProtocolError, RemoteError
from transport._fair import FairDispatcher
from transport._reply import error_from_wire, error_to_wire

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def blocked_dispatcher(gate: threading.Event, **bounds: int) -> tuple[FairDispatcher, list[str]]:
    """A dispatcher whose thread is held in a first job until ``gate`` is set."""
    dispatcher = FairDispatcher(
        "test-dispatch",
        local="me",
        per_sender=bounds.get("per_sender", 100),
        total=bounds.get("total", 1000),
    )
    ran: list[str] = []
    entered = threading.Event()

    def hold() -> None:
        entered.set()
        gate.wait(10)

    dispatcher.start()
    assert dispatcher.submit("holder", hold)
    assert entered.wait(5)
    return dispatcher, ran


def test_senders_are_served_round_robin_each_in_its_own_order(gate: threading.Event) -> None:
    dispatcher, ran = blocked_dispatcher(gate)
    for n in range(5):
        assert dispatcher.submit("flood", lambda n=n: ran.append(f"flood{n}"))
    assert dispatcher.submit("quiet", lambda: ran.append("quiet0"))
    assert dispatcher.submit("quiet", lambda: ran.append("quiet1"))
    gate.set()
    assert dispatcher.stop(5)
    # the quiet sender's messages do not wait behind the whole flood
    assert ran == ["flood0", "quiet0", "flood1", "quiet1", "flood2", "flood3", "flood4"]


def test_a_sender_over_its_bound_is_refused_while_the_others_are_accepted(
    gate: threading.Event,
) -> None:
    dispatcher, ran = blocked_dispatcher(gate, per_sender=3, total=4)
    accepted = [dispatcher.submit("flood", lambda: ran.append("f")) for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    assert dispatcher.depth_of("flood") == 3
    # the total (4) is reached, but a light sender (under 16 waiting) is still accepted
    assert dispatcher.submit("a", lambda: ran.append("a"))
    assert dispatcher.submit("b", lambda: ran.append("b"))
    assert dispatcher.depth() == 5
    gate.set()
    assert dispatcher.stop(5)
    assert sorted(ran) == ["a", "b", "f", "f", "f"]


def test_a_local_job_runs_after_everything_received_before_it(gate: threading.Event) -> None:
    dispatcher, ran = blocked_dispatcher(gate)
    for n in range(3):
        assert dispatcher.submit("peer", lambda n=n: ran.append(f"peer{n}"))
    assert dispatcher.submit("me", lambda: ran.append("barrier"))
    assert dispatcher.submit("peer", lambda: ran.append("later"))
    gate.set()
    assert dispatcher.stop(5)
    assert ran.index("barrier") == 3 and ran[:3] == ["peer0", "peer1", "peer2"]


def test_idle_for_a_sender_tells_whether_it_may_overtake_nothing(gate: threading.Event) -> None:
    dispatcher, _ran = blocked_dispatcher(gate)
    assert dispatcher.idle_for("peer")
    assert not dispatcher.idle_for("holder")  # its job is running
    assert dispatcher.submit("peer", lambda: None)
    assert not dispatcher.idle_for("peer")
    assert dispatcher.idle_for("other")
    assert dispatcher.submit("me", lambda: None)
    assert not dispatcher.idle_for("other")  # a local barrier waits
    gate.set()
    assert dispatcher.stop(5)


def test_a_local_submitter_waits_for_room_then_gets_in(gate: threading.Event) -> None:
    dispatcher, ran = blocked_dispatcher(gate, per_sender=1, total=1)
    assert dispatcher.submit("me", lambda: ran.append("first"))
    assert not dispatcher.submit("me", lambda: ran.append("refused"))
    result: list[bool] = []
    waiter = threading.Thread(
        target=lambda: result.append(dispatcher.submit("me", lambda: ran.append("second"), 5.0))
    )
    waiter.start()
    gate.set()
    waiter.join(5)
    assert result == [True]
    assert dispatcher.stop(5)
    assert ran == ["first", "second"]


@pytest.mark.parametrize(
    "refusal",
    [ActorNotFound("no actor at n/x"), ProtocolError("unknown op"), Overloaded("too many")],
)
def test_refusals_are_answered_without_a_traceback(refusal: Exception) -> None:
    try:
        raise refusal
    except Exception as exc:  # raised here to carry a real traceback
        wire = error_to_wire(exc, "node")
    assert wire.remote_traceback == ""
    assert wire.type_name == f"runtime.{type(refusal).__name__}"


def test_a_failure_keeps_its_traceback_and_overloaded_comes_back_as_its_class() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        wire = error_to_wire(exc, "node")
    assert "ValueError: boom" in wire.remote_traceback
    for name in ("runtime.Overloaded", "transport.Overloaded"):  # the second: older nodes
        back = error_from_wire(RemoteError(name, "too many", "", "node"))
        assert isinstance(back, Overloaded) and "too many" in str(back)
