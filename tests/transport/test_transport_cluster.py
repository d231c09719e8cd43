"""Nodes in separate processes (tests/transport/_peer.py) over CURVE on loopback."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest
from conftest import EventLog, Peer, RecordingHandler

from transport import ActorNotFound, Address, NodeDown, RemoteError, Security, Transport
from transport import TransportSettings as Settings

MakeTransport = Callable[..., Transport]
SpawnPeers = Callable[..., list[Peer]]
SecurityOf = Callable[[str], Security]

DEFAULTS = Settings()
# Documented for a cluster of two: the next probe, its period, the shortest suspicion and a
# tick's lateness on each of those three deadlines (1.8 s with the defaults).
DOWN_BOUND = 2 * DEFAULTS.probe_interval + DEFAULTS.suspicion_timeout + 3 * DEFAULTS.check_interval
SLACK = 0.4  # scheduling on a loaded 2-core machine


def test_three_processes_joining_through_one_seed_all_see_each_other(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    [seed] = spawn_peers([("p1", [])])
    spawn_peers([("p2", [seed.seed]), ("p3", [seed.seed])])
    test_node = make_transport("test", security=security_of("test"))
    test_node.join([seed.seed], timeout=10)
    everyone = ["p1", "p2", "p3", "test"]
    futures = [
        test_node.ask(Address(peer, "await-members"), len(everyone), timeout=10)
        for peer in ("p1", "p2", "p3")
        if test_node.members().get(peer) is not None
    ]
    assert len(futures) == 3, test_node.members()
    for future in futures:
        assert future.result(12) == everyone
    assert sorted(n for n, m in test_node.members().items() if m.status == "up") == everyone


def test_tell_and_ask_across_processes_including_peer_to_peer_forwarding(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    [p1] = spawn_peers([("p1", [])])
    handler = RecordingHandler("test")
    test_node = make_transport("test", handler, security=security_of("test"))
    test_node.join([p1.seed], timeout=10)
    assert test_node.ask(Address("p1", "echo"), {"t": (1, 2)}, timeout=5).result(6) == [
        "p1",
        {"t": (1, 2)},
    ]
    test_node.tell(Address("p1", "echo"), "told")
    assert test_node.ask(Address("p1", "tells"), None, timeout=5).result(6) == [["test", "told"]]
    # p1 tells us back: messages flow both ways over separate DEALER -> ROUTER paths.
    test_node.tell(Address("p1", "forward"), {"to": "test/sink", "value": ["back", (1,)]})
    assert handler.wait_for(1, timeout=5)
    assert handler.deliveries == [("p1", "sink", ["back", (1,)])]


def test_remote_failures_are_actor_not_found_or_remote_error_with_traceback(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    [p1] = spawn_peers([("p1", [])])
    test_node = make_transport("test", security=security_of("test"))
    test_node.join([p1.seed], timeout=10)
    started = time.monotonic()
    with pytest.raises(ActorNotFound, match="nobody"):
        test_node.ask(Address("p1", "nobody"), 1, timeout=10).result(11)
    assert time.monotonic() - started < 1.0  # an answer, not a timeout
    with pytest.raises(RemoteError) as caught:
        test_node.ask(Address("p1", "fail"), "bad input", timeout=5).result(6)
    error = caught.value
    assert (error.type_name, error.node) == ("ValueError", "p1")
    assert "fail actor refused 'bad input'" in error.message
    assert "Traceback (most recent call last)" in error.remote_traceback
    assert "_peer.py" in error.remote_traceback


def test_a_killed_node_is_declared_down_within_the_bound_and_its_asks_fail(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    [p1] = spawn_peers([("p1", [])])
    test_node = make_transport("test", security=security_of("test"))
    events = EventLog()
    test_node.subscribe(events)
    test_node.join([p1.seed], timeout=10)
    waiting = test_node.ask(Address("p1", "later"), {"delay": 30, "value": 1}, timeout=30)
    # The bound is counted from the death; an answered ask shows p1 was alive just before.
    assert test_node.ask(Address("p1", "echo"), 1, timeout=5).result(6)
    killed_at = time.monotonic()
    p1.signal(signal.SIGKILL)
    down_at = events.wait_for("p1", "down", timeout=DOWN_BOUND + 3)
    assert down_at is not None, events.events
    assert down_at - killed_at <= DOWN_BOUND + SLACK
    with pytest.raises(NodeDown, match="p1"):
        waiting.result(2)
    with pytest.raises(NodeDown):
        test_node.tell(Address("p1", "echo"), 1)


def test_a_stopped_node_is_declared_down_and_comes_back_up_when_continued(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    [p1] = spawn_peers([("p1", [])])
    test_node = make_transport("test", security=security_of("test"))
    events = EventLog()
    test_node.subscribe(events)
    test_node.join([p1.seed], timeout=10)
    assert test_node.ask(Address("p1", "echo"), 1, timeout=5).result(6)
    stopped_at = time.monotonic()
    p1.signal(signal.SIGSTOP)
    down_at = events.wait_for("p1", "down", timeout=DOWN_BOUND + 3)
    assert down_at is not None
    assert down_at - stopped_at <= DOWN_BOUND + SLACK
    p1.signal(signal.SIGCONT)
    assert events.wait_for("p1", "up", timeout=5, after=down_at) is not None
    assert test_node.ask(Address("p1", "echo"), 2, timeout=5).result(6) == ["p1", 2]


def test_a_peer_stalled_for_600ms_is_not_declared_down(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    """A member slowed by load (here: stopped 0.6 s, like a GIL held that long) is at
    most suspected; it answers again and is never declared down."""
    [p1] = spawn_peers([("p1", [])])
    test_node = make_transport("test", security=security_of("test"))
    events = EventLog()
    test_node.subscribe(events)
    test_node.join([p1.seed], timeout=10)
    assert test_node.ask(Address("p1", "echo"), 1, timeout=5).result(6)
    for _ in range(3):
        p1.signal(signal.SIGSTOP)
        stalled = threading.Event()
        stalled.wait(0.6)  # the stall itself, not a wait for something to happen
        p1.signal(signal.SIGCONT)
        assert test_node.ask(Address("p1", "echo"), 2, timeout=5).result(6) == ["p1", 2]
    assert events.wait_for("p1", "down", timeout=DOWN_BOUND) is None
    assert test_node.members()["p1"].status == "up"


def test_close_with_a_dead_peer_is_quick_and_leaves_no_threads(
    spawn_peers: SpawnPeers, security_of: SecurityOf
) -> None:
    [p1] = spawn_peers([("p1", [])])
    node = Transport(
        "test", listen="tcp://127.0.0.1:0", handler=RecordingHandler(), security=security_of("test")
    )
    node.start()
    try:
        node.join([p1.seed], timeout=10)
        for n in range(50):  # queued frames to a dead peer must not hold up close
            node.tell(Address("p1", "echo"), n)
        p1.signal(signal.SIGKILL)
        for n in range(50):
            node.tell(Address("p1", "echo"), n)
    finally:
        started = time.monotonic()
        node.close(timeout=5)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert [t.name for t in threading.enumerate() if t.name.startswith("actorflow-")] == []


def test_a_node_that_leaves_is_marked_left_by_every_peer(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    [p1] = spawn_peers([("p1", [])])
    test_node = make_transport("test", security=security_of("test"))
    test_node.join([p1.seed], timeout=10)
    assert test_node.ask(Address("p1", "await-members"), 2, timeout=5).result(6) == ["p1", "test"]
    seen_by_test = EventLog()
    test_node.subscribe(seen_by_test)
    observer = make_transport("local", security=security_of("local"))
    events = EventLog()
    observer.subscribe(events)
    observer.join([p1.seed], timeout=10)
    # "local" learns "test" from p1's member list and says hello to it directly.
    assert seen_by_test.wait_for("local", "up", timeout=5) is not None
    assert test_node.ask(Address("p1", "await-members"), 3, timeout=5).result(6)
    test_node.leave(timeout=3)
    assert events.wait_for("test", "left", timeout=3) is not None
    stats = observer.ask(Address("p1", "stats"), None, timeout=5).result(6)
    assert stats["members"]["test"] == "left"
