"""Supervised children that take snapshots or run on another member (in-process members)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import pykka
import pytest

import runtime._children
from runtime import (
    ActorSystem,
    ChildSpec,
    ManualClock,
    MemoryStore,
    NodeLoad,
    PersistenceError,
    RestartIntensity,
    RoundRobin,
    StaleEpoch,
    TerminationReason,
)
from runtime.cluster import ACTORS
from runtime.store import decode_value
from tests.actors_remote.watch_kit import Counter, Inbox, Plain
from tests.support import wait_until
from transport import Address, AskTimeout


class OnPeer:
    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        return next((c.node for c in candidates if c.node == "peer"), candidates[0].node)


def _restarted(supervisor: pykka.ActorRef[Any], before: object) -> Any:
    found: list[object] = []

    def changed() -> bool:
        child = supervisor.ask("children").get("counter")
        if child is not None and child != before:
            found.append(child)
            return True
        return False

    assert wait_until(changed, 20)
    return found[0]


def _watched_supervisor(
    system: ActorSystem, spec: ChildSpec, *, max_restarts: int, period: float, name: str
) -> tuple[pykka.ActorRef[Any], Inbox, Any]:
    """A supervisor of the one child ``spec``, watched into an inbox; and that child."""
    supervisor = system.supervise(
        [spec], intensity=RestartIntensity(max_restarts=max_restarts, period=period), name=name
    )
    gone = Inbox()
    system.watch(supervisor, gone)
    return supervisor, gone, supervisor.ask("children")[spec.name]


def test_a_crashed_local_child_resumes_from_its_last_snapshot() -> None:
    with ActorSystem("solo", store=MemoryStore()) as system:
        supervisor = system.supervise([ChildSpec("counter", Counter)], name="sup")
        child = supervisor.ask("children")["counter"]
        assert [child.ask("add") for _ in range(3)] == [1, 2, 3]
        child.tell("crash")
        restarted = _restarted(supervisor, child)
        assert restarted.ask("add") == 4
        lease = system.store.actor_lease("child/sup/counter")
        assert lease.epoch == 2


def test_a_stale_incarnation_cannot_write_its_snapshot_and_stops() -> None:
    store = MemoryStore()
    with ActorSystem("solo", store=store) as system:
        supervisor = system.supervise([ChildSpec("counter", Counter)], name="sup")
        child = supervisor.ask("children")["counter"]
        assert child.ask("add") == 1
        store.claim_actor("child/sup/counter", owner="elsewhere", lease=60, force=True)
        with pytest.raises(StaleEpoch, match="child/sup/counter"):
            child.ask("add")
        assert wait_until(lambda: not child.is_alive(), 10)
        snapshot = store.load_snapshot("child/sup/counter")
        assert snapshot is not None and snapshot.epoch == 1


def test_a_store_without_actor_state_is_refused_naming_it() -> None:
    class RunsOnly:
        pass

    with ActorSystem("solo", store=MemoryStore()) as system:
        system._runs._store = RunsOnly()  # type: ignore[assignment]
        with pytest.raises(PersistenceError, match="keeps no actor state"):
            system.singleton("x", Counter)


def test_remote_child_spec_needs_a_system_supervisor() -> None:
    from runtime import Supervisor

    with pytest.raises(ValueError, match=r"ActorSystem\.supervise"):
        Supervisor([ChildSpec("c", Counter, node="elsewhere")])
    with pytest.raises(ValueError, match="node or placement, not both"):
        ChildSpec("c", Counter, node="a", placement=OnPeer())


@pytest.mark.timeout(60)
def test_remote_child_crashes_escalate_exactly_as_local_ones(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    peer.register_actor(Plain)
    supervisor, supervisor_gone, child = _watched_supervisor(
        coordinator,
        ChildSpec("counter", Plain, placement=OnPeer()),
        max_restarts=2,
        period=60,
        name="remote-sup",
    )
    for restarts in (1, 2):
        assert child.address.node == "peer"
        child.tell("crash")
        child = _restarted(supervisor, child)
        assert supervisor.ask("stats").restarts_total == restarts
    child.tell("crash")  # the third crash within the period: more than max_restarts
    [gone] = supervisor_gone.wait(1)
    assert gone.reason is TerminationReason.CRASHED
    assert "EscalationError" in gone.detail
    assert wait_until(lambda: not any(p.startswith("$child/") for p in _hosted(peer)), 10)


def _hosted(system: ActorSystem) -> list[str]:
    return list(system._watches._hosted)


@pytest.mark.timeout(60)
def test_a_remote_child_is_stopped_when_the_node_that_started_it_leaves(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    peer.register_actor(Plain)
    supervisor = coordinator.supervise([ChildSpec("c", Plain, node="peer")], name="orphans")
    child = supervisor.ask("children")["c"]
    assert child.ask("hello", timeout=10) == "hello"
    assert any(p.startswith("$child/orphans/c/") for p in _hosted(peer))
    coordinator.leave(drain_timeout=1.0)
    assert wait_until(lambda: not any(p.startswith("$child/") for p in _hosted(peer)), 20)


class EveryThird(Counter):
    snapshot_every = 3


def test_snapshot_every_saves_after_every_nth_message_only() -> None:
    store = MemoryStore()
    with ActorSystem("solo", store=store) as system:
        child = system.supervise([ChildSpec("c", EveryThird)], name="sup").ask("children")["c"]
        saved = []
        for _ in range(7):
            child.ask("add")
            snapshot = store.load_snapshot("child/sup/c")
            saved.append(None if snapshot is None else decode_value(snapshot.state, what="t"))
        assert [s and s["count"] for s in saved] == [None, None, 3, 3, 3, 6, 6]


def test_a_bad_snapshot_every_is_refused_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    class Bad(Counter):
        snapshot_every = 0

    with ActorSystem("solo", store=MemoryStore()) as system:
        supervisor = system.supervise([ChildSpec("c", Bad)], name="sup")
        assert wait_until(lambda: not supervisor.is_alive(), 10)  # escalates: cannot start
    assert "Bad.snapshot_every must be an int >= 1, got 0" in caplog.text


def test_snapshotting_children_count_against_the_intensity_window_of_the_clock() -> None:
    clock = ManualClock()
    with ActorSystem("manual", clock=clock, store=MemoryStore()) as system:
        supervisor, gone, child = _watched_supervisor(
            system, ChildSpec("counter", Counter), max_restarts=1, period=5, name="window"
        )
        child.tell("crash")
        child = _restarted(supervisor, child)  # restart 1 of 1 in the window
        clock.advance(5.5)  # the window moves past it
        child.tell("crash")
        child = _restarted(supervisor, child)
        assert supervisor.ask("stats").restarts_total == 2
        child.tell("crash")  # a second one within 5 s: escalates
        [message] = gone.wait(1)
        assert "EscalationError" in message.detail


class PoisonedRestore(Counter):
    def restore(self, state: Any) -> None:
        raise ValueError(f"cannot restore {state!r}")


def test_a_restore_that_raises_counts_as_a_crash_and_escalates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ActorSystem("solo", store=MemoryStore()) as system:
        _supervisor, gone, child = _watched_supervisor(
            system, ChildSpec("c", PoisonedRestore), max_restarts=2, period=60, name="poison"
        )
        assert child.ask("add") == 1  # the first start had no snapshot to restore
        child.tell("crash")
        assert "EscalationError" in gone.wait(1)[0].detail
    assert "cannot restore {'count': 1}" in caplog.text


class Unregistered(Plain):
    """Registered nowhere."""


@pytest.mark.timeout(60)
def test_placement_chooses_only_among_members_that_registered_the_class(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
    caplog: pytest.LogCaptureFixture,
) -> None:
    coordinator, peer = coordinator_and_peer
    assert coordinator.cluster is not None
    name = peer.register_actor(Plain)
    assert wait_until(lambda: coordinator.cluster.holders(ACTORS, name) == ["peer"], 10)
    supervisor = coordinator.supervise(
        [ChildSpec(f"c{i}", Plain, placement=RoundRobin()) for i in range(3)], name="rr"
    )
    assert {c.address.node for c in supervisor.ask("children").values()} == {"peer"}

    lonely = coordinator.supervise(
        [ChildSpec("nobody", Unregistered, placement=RoundRobin())],
        intensity=RestartIntensity(max_restarts=1, period=60),
        name="lonely",
    )
    assert wait_until(lambda: not lonely.is_alive(), 10)  # cannot start anywhere: escalates
    assert "no live member registered" in caplog.text


class SlowToStart(Plain):
    """A child whose constructor waits for ``opened`` (a node too busy to answer a start)."""

    opened = threading.Event()
    running: ClassVar[set[int]] = set()
    ran: ClassVar[list[int]] = []

    def __init__(self) -> None:
        super().__init__()
        SlowToStart.opened.wait(20)

    def on_start(self) -> None:
        SlowToStart.ran.append(id(self))
        SlowToStart.running.add(id(self))

    def on_stop(self) -> None:
        SlowToStart.running.discard(id(self))


@pytest.mark.timeout(60)
def test_a_remote_start_that_timed_out_leaves_no_child_behind(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coordinator, peer = coordinator_and_peer
    peer.register_actor(SlowToStart)
    monkeypatch.setattr(runtime._children, "_START_TIMEOUT", 0.5)
    escalated = threading.Event()
    supervisor = coordinator.supervise(
        [ChildSpec("slow", SlowToStart, node="peer")],
        intensity=RestartIntensity(max_restarts=0, period=60),
        name="impatient",
    )
    coordinator.watch(supervisor, lambda _gone: escalated.set())
    assert escalated.wait(20)  # its start timed out: a crash, and no restarts allowed
    SlowToStart.opened.set()  # the node gets to the start it was asked for
    assert wait_until(lambda: SlowToStart.ran, 10)
    assert wait_until(lambda: not SlowToStart.running, 10)  # and stops it: nobody supervises it


@pytest.mark.timeout(60)
def test_a_remote_child_whose_watch_was_not_confirmed_is_stopped_not_left_running(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    peer.register_actor(Plain)
    assert coordinator.cluster is not None
    transport = coordinator.cluster.transport
    ask = transport.ask

    def unanswered_watch(to: Address, message: Any, **kwargs: Any) -> Any:
        if isinstance(message, dict) and message.get("op") == "watch":
            lost: concurrent.futures.Future[Any] = concurrent.futures.Future()
            lost.set_exception(AskTimeout("no answer (a node too busy to answer in time)"))
            return lost
        return ask(to, message, **kwargs)

    transport.ask = unanswered_watch  # type: ignore[method-assign]
    escalated = threading.Event()
    supervisor = coordinator.supervise(
        [ChildSpec("plain", Plain, node="peer")],
        intensity=RestartIntensity(max_restarts=0, period=60),
        name="unsure",
    )
    coordinator.watch(supervisor, lambda _gone: escalated.set())
    assert escalated.wait(20)  # its child counted as gone: a crash, and no restarts allowed
    transport.ask = ask  # type: ignore[method-assign]
    assert wait_until(lambda: not _children_on(peer), 10), _children_on(peer)


def _children_on(system: ActorSystem) -> list[str]:
    """The ``$child/`` actors alive on ``system``."""
    return [
        path
        for path, ref in list(system._named.items())
        if path.startswith("$child/") and ref.is_alive()
    ]
