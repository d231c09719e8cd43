"""Death watch in one process and between two in-process members on loopback."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from runtime import (
    ActorSystem,
    Address,
    ChildSpec,
    Client,
    RemoteError,
    Terminated,
    TerminationReason,
)
from runtime.workflow import qualified_name
from tests.actors_remote.watch_kit import Echo, Inbox, Watching, WatchingChild
from tests.support import wait_until


def test_a_stopped_actor_is_reported_stopped_once(system: ActorSystem) -> None:
    ref = system.spawn(Echo, name="echo")
    inbox = Inbox()
    system.watch(ref, inbox)
    system.watch(system.ref("test/echo"), inbox)  # same target, same watcher: still once
    ref.stop()
    [message] = inbox.wait(1)
    assert message.address == Address("test", "echo")
    assert message.reason is TerminationReason.STOPPED
    assert not wait_until(lambda: len(inbox.received) > 1, 0.2)


def test_a_crashed_actor_is_reported_crashed_with_its_error(system: ActorSystem) -> None:
    ref = system.spawn(Echo)
    inbox = Inbox()
    system.watch(ref, inbox)
    ref.tell("crash")
    [message] = inbox.wait(1)
    assert message.reason is TerminationReason.CRASHED
    assert "told to crash" in message.detail


def test_watching_an_actor_already_gone_answers_at_once(system: ActorSystem) -> None:
    ref = system.spawn(Echo, name="gone")
    ref.stop()
    inbox = Inbox()
    system.watch(ref, inbox)
    system.watch("test/never-was", inbox)
    assert {m.reason for m in inbox.wait(2, timeout=0.5)} == {TerminationReason.NOT_FOUND}


def test_unwatch_cancels_delivery(system: ActorSystem) -> None:
    ref = system.spawn(Echo, name="echo")
    cancelled, kept = Inbox(), Inbox()
    system.watch(ref, cancelled)
    system.watch(ref, kept)
    system.unwatch(ref, cancelled)
    ref.stop()
    kept.wait(1)  # delivered in one pass: the cancelled one would have had it by now
    assert cancelled.received == []


def test_an_actor_watches_from_inside_and_is_told_terminated(system: ActorSystem) -> None:
    target = system.spawn(Echo, name="target")
    watcher = system.spawn(Watching)
    watcher.ask({"watch": "test/target"})
    target.stop()
    assert wait_until(lambda: watcher.ask("seen"), 10)
    [message] = watcher.ask("seen")
    assert (message.address, message.reason) == (
        Address("test", "target"),
        TerminationReason.STOPPED,
    )


def test_a_watcher_on_another_node_is_refused(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    peer.spawn(Echo, name="echo")
    with pytest.raises(ValueError, match="watch from the system where the watcher runs"):
        coordinator.watch("peer/echo", coordinator.ref("peer/echo"))


@pytest.mark.timeout(60)
def test_remote_watches_end_stopped_crashed_not_found_and_node_left(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    stopped, crashed, survivor = (
        peer.spawn(Echo, name=n) for n in ("stopped", "crashed", "survivor")
    )
    inbox = Inbox()
    for name in ("stopped", "crashed", "survivor", "missing"):
        coordinator.watch(f"peer/{name}", inbox)
    assert inbox.wait(1)[0].reason is TerminationReason.NOT_FOUND
    assert wait_until(lambda: peer._watches.is_hosted("survivor") and _watched(peer, 3), 10)
    stopped.stop()
    crashed.tell("crash")
    inbox.wait(3)
    peer.leave(drain_timeout=1.0)
    by_path = {m.address.path: m.reason for m in inbox.wait(4)}
    assert by_path == {
        "missing": TerminationReason.NOT_FOUND,
        "stopped": TerminationReason.STOPPED,
        "crashed": TerminationReason.CRASHED,
        "survivor": TerminationReason.NODE_LEFT,
    }
    assert isinstance(survivor, pykka.ActorRef)


def _watched(system: ActorSystem, count: int) -> bool:
    """Whether ``count`` of the system's hosted actors have a remote watcher (registered)."""
    return sum(1 for nodes in system._watches._hosted.values() if nodes) >= count


def test_a_named_watcher_given_as_a_ref_gets_terminated_in_its_mailbox(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    target = peer.spawn(Echo, name="target")
    watcher = coordinator.spawn(Watching, name="watcher")
    coordinator.watch("peer/target", coordinator.ref("coord/watcher"))
    assert wait_until(lambda: _watched(peer, 1), 10)
    target.stop()
    assert wait_until(lambda: watcher.ask("seen"), 10)
    [message] = watcher.ask("seen")
    assert (message.address, message.reason) == (
        Address("peer", "target"),
        TerminationReason.STOPPED,
    )


def test_a_supervised_child_watches_from_inside_and_is_watched(system: ActorSystem) -> None:
    supervisor = system.supervise([ChildSpec("w", WatchingChild)], name="watchers")
    child = supervisor.ask("children")["w"]
    target = system.spawn(Echo, name="target")
    child.ask({"watch": "test/target"})
    target.stop()
    assert wait_until(lambda: child.ask("seen"), 10)
    inbox = Inbox()
    system.watch(child, inbox)  # a child of a system supervisor is watchable like any actor
    supervisor.stop()
    assert inbox.wait(1)[0].reason is TerminationReason.STOPPED


def test_a_client_may_not_watch_or_start_children() -> None:
    with (
        ActorSystem("member", listen="tcp://127.0.0.1:0", plaintext=True) as member,
        Client(str(member.address), plaintext=True) as client,
    ):
        member.spawn(Echo, name="echo")
        for op in ("watch", "start", "terminated"):
            future = client._transport.ask(
                "member", "$actors", {"op": op, "path": "echo"}, timeout=10
            )
            with pytest.raises(RemoteError, match="only a cluster member may send it"):
                future.result(11)
        assert not _watched(member, 1)


class _SlowToExit(pykka.ThreadingActor):
    """Crashes when told; its ``on_failure`` then holds its thread until ``release`` is set.

    Between its crash (no longer alive) and its thread's end (exit reported), a
    new actor may already take its name.
    """

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("told to crash")
        return message

    def on_failure(self, *_exc_info: Any) -> None:
        self._release.wait(30)


def test_a_name_taken_over_before_the_old_exit_is_reported_keeps_each_watch(
    system: ActorSystem,
) -> None:
    release = threading.Event()
    old = system.spawn(_SlowToExit, release, name="reused")
    old_watch = Inbox()
    system.watch(old, old_watch)
    old.tell("crash")
    assert wait_until(lambda: not old.is_alive(), 10)  # stopped; its thread still in on_failure
    new = system.spawn(Echo, name="reused")  # the name is free again
    new_watch = Inbox()
    system.watch(new, new_watch)
    release.set()
    [message] = old_watch.wait(1, timeout=10)  # the old actor's crash, not lost
    assert message.reason is TerminationReason.CRASHED
    assert new.is_alive() and new_watch.received == []  # the new one's watch still holds
    new.stop()
    [stopped] = new_watch.wait(1, timeout=10)
    assert stopped.reason is TerminationReason.STOPPED
    assert len(old_watch.received) == 1


def test_actors_start_and_stop_reach_only_child_paths() -> None:
    with (
        ActorSystem("member", listen="tcp://127.0.0.1:0", plaintext=True) as member,
        ActorSystem(
            "peer", listen="tcp://127.0.0.1:0", join=[str(member.address)], plaintext=True
        ) as peer,
        Client(str(member.address), plaintext=True) as client,
    ):
        member.register_actor(Echo)
        echo = member.spawn(Echo, name="echo")
        assert wait_until(lambda: peer.members().get("member") == "up", 10)
        stop = client._transport.ask(
            "member", "$actors", {"op": "stop", "path": "echo"}, timeout=10
        )
        with pytest.raises(RemoteError, match=r"\$child/"):
            stop.result(11)
        assert echo.is_alive()  # a client cannot stop a user's actor through $actors
        assert peer.cluster is not None
        for path in ("taken-by-peer", "$singleton/counter", ""):
            request = {"op": "start", "class": qualified_name(Echo), "args": [], "path": path}
            start = peer.cluster.transport.ask(Address("member", "$actors"), request, timeout=10)
            with pytest.raises(RemoteError, match=r"\$child/"):
                start.result(11)
            assert member._named_ref(path) is None


def _watch_entries(system: ActorSystem) -> int:
    """How many watches the system keeps (its death watch's and its watch service's)."""
    service = sum(len(watchers) for watchers in system._watches._watchers.values())
    return service + len(system._death_watch._ids)


def test_the_watches_of_a_watcher_that_stopped_are_dropped(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    local = coordinator.spawn(Echo, name="long-lived")
    peer.spawn(Echo, name="remote-long-lived")
    remote = coordinator.ref("peer/remote-long-lived")
    for _ in range(20):  # short-lived actors, each watching long-lived ones
        watcher = coordinator.spawn(Watching)
        coordinator.watch(local, watcher)
        coordinator.watch(remote, watcher)
        watcher.stop()
    assert wait_until(lambda: _watch_entries(coordinator) == 0, 10), _watch_entries(coordinator)
    assert wait_until(lambda: not _watched(peer, 1), 10)  # the peer was told: unwatch
    kept = Inbox()
    coordinator.watch(remote, kept)  # a watch of a live watcher still holds
    assert wait_until(lambda: _watched(peer, 1), 10)
    peer._named_ref("remote-long-lived").stop()
    assert kept.wait(1)[0].reason is TerminationReason.STOPPED


@pytest.mark.timeout(60)
def test_a_watch_made_while_the_last_unwatch_is_on_its_way_still_holds(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    target = peer.spawn(Echo, name="target")
    address = Address("peer", "target")
    assert coordinator.cluster is not None
    transport = coordinator.cluster.transport
    unwatch_reached, watch_sent = threading.Event(), threading.Event()
    tell, ask = transport.tell, transport.ask

    def slow_unwatch(to: Address, message: Any) -> None:  # the unwatching thread, preempted
        if isinstance(message, dict) and message.get("op") == "unwatch":
            unwatch_reached.set()
            watch_sent.wait(2)  # a fixed order takes the full 2 s; the race does not wait
        tell(to, message)

    def noted_watch(to: Address, message: Any, **kwargs: Any) -> Any:
        future = ask(to, message, **kwargs)
        if isinstance(message, dict) and message.get("op") == "watch":
            watch_sent.set()
        return future

    first, second = Inbox(), Inbox()
    coordinator.watch(address, first)
    assert wait_until(lambda: _watched(peer, 1), 10)
    transport.tell, transport.ask = slow_unwatch, noted_watch  # type: ignore[method-assign]
    unwatching = threading.Thread(target=coordinator.unwatch, args=(address, first))
    unwatching.start()
    assert unwatch_reached.wait(10)
    coordinator.watch(address, second)  # its watch goes out before the unwatch above
    unwatching.join(10)
    transport.tell, transport.ask = tell, ask  # type: ignore[method-assign]
    assert coordinator.ref(address).ask("ping", timeout=10) == "ping"  # behind both, in order
    target.stop()
    [message] = second.wait(1, timeout=10)
    assert message.reason is TerminationReason.STOPPED
    assert first.received == []


def test_no_terminated_is_delivered_after_unwatch_returned(system: ActorSystem) -> None:
    ref = system.spawn(Echo, name="echo")
    entered, release = threading.Event(), threading.Event()

    def slow(_message: Terminated) -> None:  # holds the delivery pass
        entered.set()
        release.wait(10)

    cancelled, after = Inbox(), Inbox()
    system.watch(ref, slow)
    system.watch(ref, cancelled)
    system.watch(ref, after)  # told after ``cancelled`` would have been, in the same pass
    ref.stop(block=False)
    assert entered.wait(10)  # the pass has begun: ``cancelled``'s turn is yet to come
    system.unwatch(ref, cancelled)
    release.set()
    after.wait(1, timeout=10)
    assert cancelled.received == []
