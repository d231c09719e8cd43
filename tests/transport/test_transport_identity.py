"""Member identity on real sockets: incarnations, refusal of a name in use, supersede, forget.

Peers are processes (``_peer.py``) or transports of this process on 127.0.0.1;
raw DEALERs play made-up nodes. Every wait is on an event with a deadline.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import EventLog, LogWatcher, Peer, RawDealer

from transport import Address, NameInUse, NodeDown, Security, Transport, TransportSettings
from transport._envelope import Envelope, Kind, encode_envelope
from transport._handshake import MAX_PROBES

MakeTransport = Callable[..., Transport]
SpawnPeers = Callable[..., list[Peer]]
SecurityOf = Callable[[str], Security]

pytestmark = pytest.mark.timeout(60)

NOWHERE = "tcp://127.0.0.1:9"  # loopback, nobody listening


def seed_of(node: Transport) -> str:
    return f"{node.name}@{node.address}"


def hello(message_id: int, sender: str, incarnation: int) -> bytes:
    body = {"role": "member", "address": NOWHERE, "incarnation": incarnation}
    return encode_envelope(Envelope(Kind.HELLO, message_id, 0, sender, "", body))


def test_a_second_live_process_with_a_name_in_use_is_refused_and_the_original_stays_up(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    seed = make_transport("test", security=security_of("test"))
    events = EventLog()
    seed.subscribe(events)
    [p1] = spawn_peers([("p1", [seed_of(seed)])])
    original = seed.members()["p1"]
    assert original.status == "up" and original.address == p1.address

    impostor = make_transport("p1", security=security_of("p1"))
    with pytest.raises(NameInUse, match=r"'p1'.*in use by a live member"):
        impostor.join([seed_of(seed)], timeout=10)
    # through the live node itself as the seed: refused the same way
    with pytest.raises(NameInUse, match=r"'p1'.*in use by a live member"):
        impostor.join([p1.seed], timeout=10)
    assert impostor.members().keys() == {"p1"}  # the impostor learned of nobody

    # The original is untouched and keeps answering probes: it answers after longer than
    # the shortest suspicion, and the seed never saw it down or left meanwhile.
    delay = TransportSettings().suspicion_timeout + 1.0
    later = seed.ask(Address("p1", "later"), {"delay": delay, "value": "alive"}, timeout=10)
    assert later.result(15) == "alive"
    now = seed.members()["p1"]
    assert (now.status, now.address, now.incarnation) == ("up", p1.address, original.incarnation)
    assert events.statuses("p1") == ["up"]
    stats = seed.ask(Address("p1", "stats"), None, timeout=5).result(6)
    assert stats["members"] == {"p1": "up", "test": "up"}
    assert seed.stats().frames_dropped["name_in_use"] >= 1


def test_a_restarted_node_supersedes_its_killed_incarnation(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    seed = make_transport("test", security=security_of("test"))
    events = EventLog()
    seed.subscribe(events)
    [old] = spawn_peers([("p2", [seed_of(seed)])])
    old_incarnation = seed.members()["p2"].incarnation
    old.process.kill()  # kill -9: no leave, no goodbye
    old.process.wait(5)
    assert events.wait_for("p2", "down", timeout=10) is not None

    [new] = spawn_peers([("p2", [seed_of(seed)])])  # READY: its join was accepted
    member = seed.members()["p2"]
    assert (member.status, member.address) == ("up", new.address)
    assert member.incarnation != old_incarnation
    assert events.statuses("p2") == ["up", "down", "up"]
    reply = seed.ask(Address("p2", "echo"), "again", timeout=5).result(6)
    assert reply == ["p2", "again"]


def test_a_probe_of_another_incarnation_is_dropped(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    node = make_transport("test")
    assert node.address is not None
    dealer = raw_dealer(node.address)
    dealer.send(hello(1, "ghost", incarnation=5))
    stale = Envelope(Kind.PING, 2, 0, "ghost", "", [6, []])
    dealer.send(encode_envelope(stale))
    assert log_watcher.wait_for("ping from incarnation 6 of 'ghost'")
    assert node.members()["ghost"].incarnation == 5
    assert node.stats().frames_dropped["stale_incarnation"] == 1


def test_made_up_members_in_a_plaintext_members_frame_leave_the_table_unchanged(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    node = make_transport("test")
    assert node.address is not None
    dealer = raw_dealer(node.address)
    dealer.send(hello(1, "evil", incarnation=1))  # a member now, as anyone can be in plaintext
    made_up = [[f"made-up-{i}", NOWHERE, "up", i + 1] for i in range(300)]
    dealer.send(encode_envelope(Envelope(Kind.MEMBERS, 2, 0, "evil", "", made_up)))
    dealer.send(b"\xc1")  # malformed: handled after the members frame (one socket, in order)
    assert log_watcher.wait_for("(malformed)")
    assert node.members().keys() == {"evil", "test"}
    dropped = node.stats().frames_dropped
    assert dropped["probe_limit"] == 1  # MAX_PROBES hellos sent, the rest skipped
    assert MAX_PROBES < 300


def test_departed_members_are_forgotten_after_the_grace_period(
    spawn_peers: SpawnPeers, make_transport: MakeTransport, log_watcher: LogWatcher
) -> None:
    settings = TransportSettings(forget_after=0.5)
    node = make_transport("test", settings=settings)
    events = EventLog()
    node.subscribe(events)
    leaver = make_transport("leaver")
    leaver.join([seed_of(node)], timeout=10)
    leaver.leave()
    assert events.wait_for("leaver", "left", timeout=10) is not None
    [dead] = spawn_peers([("p3", [seed_of(node)])], secure=False)
    dead.process.kill()
    dead.process.wait(5)
    assert events.wait_for("p3", "down", timeout=10) is not None

    assert log_watcher.wait_for("member leaver is forgotten", timeout=10)
    assert log_watcher.wait_for("member p3 is forgotten", timeout=10)
    assert node.members().keys() == {"test"}
    with pytest.raises(NodeDown, match="unknown"):
        node.tell(Address("p3", "echo"), "gone")


def test_three_hundred_short_lived_joiners_that_leave_do_not_fill_the_table(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    node = make_transport("test")  # max_members 256, forget_after 60 s: no time passes here
    assert node.address is not None
    dealer = raw_dealer(node.address)
    for index in range(300):
        dealer.send(hello(2 * index + 1, f"cli-{index}", incarnation=index + 1))
        dealer.send(
            encode_envelope(Envelope(Kind.LEAVE, 2 * index + 2, 0, f"cli-{index}", "", None))
        )
    dealer.send(b"\xc1")
    assert log_watcher.wait_for("(malformed)")
    members = node.members()
    assert "cli-299" in members and len(members) <= TransportSettings().max_members + 1
    assert "refused_hello" not in node.stats().frames_dropped
    late = make_transport("late")
    late.join([seed_of(node)], timeout=10)  # still room for a real node
    assert node.members()["late"].status == "up"


def test_real_joiners_that_leave_do_not_fill_a_small_table(make_transport: MakeTransport) -> None:
    node = make_transport("test", settings=TransportSettings(max_members=4))
    for index in range(12):
        joiner = make_transport(f"cli-{index}")
        joiner.join([seed_of(node)], timeout=10)
        joiner.leave()
        joiner.close()
    last = make_transport("last")
    last.join([seed_of(node)], timeout=10)
    assert node.members()["last"].status == "up"
    assert len(node.members()) <= 5
