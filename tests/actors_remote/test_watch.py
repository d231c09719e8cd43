"""Death watch in one process and between two in-process members on loopback."""

from __future__ import annotations

import pykka
import pytest

from runtime import ActorSystem, Address, ChildSpec, Client, RemoteError, TerminationReason
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
