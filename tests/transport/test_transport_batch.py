"""Batch frames: several envelopes of one sender in one ZeroMQ frame.

A burst of tells travels in batches, in order; a batch's items are checked one
by one like frames of their own, so a bad item is dropped (logged, naming the
peer) without losing the valid ones, and a batch that is itself bad is dropped
whole. Nothing here sleeps: every wait has a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from conftest import (
    LOOPBACK,
    KnowsAbsent,
    LogWatcher,
    RawDealer,
    RecordingHandler,
    ghost_member,
    hello,
)

from tests.support import wait_until
from transport import (
    Address,
    Envelope,
    Limits,
    ProtocolError,
    Security,
    Transport,
    TransportSettings,
)
from transport._envelope import (
    MAX_BATCH,
    PROTOCOL_VERSION,
    Kind,
    decode_envelope,
    encode_batch,
    encode_envelope,
    envelope_from_fields,
    tell_target,
)

MakeTransport = Callable[..., Transport]
SecurityOf = Callable[[str], Security]


def tell(sender: str, message_id: int, body: Any) -> bytes:
    return encode_envelope(Envelope(Kind.TELL, message_id, 0, sender, "sink", body))


def raw_batch(sender: str, body: Any, target: str = "") -> bytes:
    return msgpack.packb(
        [PROTOCOL_VERSION, "batch", 999, 0, sender, target, body], use_bin_type=True
    )


# -- codec ----------------------------------------------------------------------------


def test_a_batch_round_trips_and_its_items_decode_alone() -> None:
    items = [tell("a", 1, "x"), tell("a", 2, [1, (2, 3)])]
    batch = decode_envelope(encode_batch(7, "a", items))
    assert (batch.kind, batch.message_id, batch.sender, batch.target) == (Kind.BATCH, 7, "a", "")
    assert batch.body == items
    assert [decode_envelope(item).body for item in batch.body] == ["x", [1, (2, 3)]]


@pytest.mark.parametrize(
    ("frame", "named"),
    [
        (raw_batch("a", []), "batch body"),
        (raw_batch("a", [b"x"] * (MAX_BATCH + 1)), "batch body"),
        (raw_batch("a", ["not bin"]), "batch body"),
        (raw_batch("a", b"not an array"), "batch body"),
        (raw_batch("a", [b"x"], target="sink"), "target must be empty"),
    ],
    ids=["empty", "too many", "str item", "bin body", "with target"],
)
def test_a_malformed_batch_is_refused_naming_the_field(frame: bytes, named: str) -> None:
    with pytest.raises(ProtocolError, match=named):
        decode_envelope(frame)


def test_a_batch_over_the_frame_limit_cannot_be_encoded() -> None:
    with pytest.raises(ProtocolError, match="max_frame_bytes"):
        encode_batch(1, "a", [b"x" * 700_000, b"y" * 700_000])


# -- between transports ------------------------------------------------------------------


def test_a_burst_of_tells_travels_in_batches_in_order(make_transport: MakeTransport) -> None:
    handler = RecordingHandler("p1")
    server = make_transport("p1", handler)
    client = make_transport("test", listen=LOOPBACK)
    assert server.address is not None
    client.join([server.address], timeout=10)
    sent = 5000
    frames_before = client.stats().frames_out
    for index in range(sent):
        client.tell(Address("p1", "sink"), index)
    assert handler.wait_for(sent, timeout=20)
    assert [message for _, _, message in handler.deliveries] == list(range(sent))
    # Far fewer frames than messages went out: the outbox was drained in batches.
    assert client.stats().frames_out - frames_before < sent
    assert client.ask(Address("p1", "echo"), "after", timeout=5).result(6) == ["p1", "after"]


@pytest.mark.parametrize(
    ("limits", "sent", "pad"),
    [
        (Limits(max_array_len=8), 2000, 0),  # a batch holds at most 8 items then
        (Limits(max_bin_len=1000), 300, 2000),  # ~2 KB frames, fine alone, are not batched
    ],
    ids=["max_array_len", "max_bin_len"],
)
def test_batches_stay_within_small_limits(
    make_transport: MakeTransport, limits: Limits, sent: int, pad: int
) -> None:
    """Every node shares the limits; a batch the receiver would refuse is never sent."""
    settings = TransportSettings(limits=limits)
    handler = RecordingHandler("p1")
    server = make_transport("p1", handler, settings=settings)
    client = make_transport("test", listen=LOOPBACK, settings=settings)
    assert server.address is not None
    client.join([server.address], timeout=10)
    for index in range(sent):
        client.tell(Address("p1", "sink"), [index, "x" * pad])
    assert handler.wait_for(sent, timeout=20)
    assert [message[0] for _, _, message in handler.deliveries] == list(range(sent))
    assert "malformed" not in server.stats().frames_dropped


def test_bad_items_of_a_batch_are_dropped_and_the_valid_ones_delivered(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    handler = RecordingHandler("a")
    a, dealer = ghost_member(make_transport, raw_dealer, handler)
    items = [
        tell("ghost", 2, "first"),
        b"\xc1 not msgpack",
        tell("other", 3, "spoofed sender"),
        encode_batch(4, "ghost", [tell("ghost", 5, "nested")]),
        tell("ghost", 2, "replayed id"),
        tell("ghost", 6, "last"),
    ]
    dealer.send(encode_batch(100, "ghost", items))
    assert handler.wait_for(2)
    assert log_watcher.wait_for("of a batch from 'ghost'", count=3)
    assert [message for _, _, message in handler.deliveries] == ["first", "last"]
    dropped = a.stats().frames_dropped
    assert (dropped["malformed"], dropped["sender_mismatch"], dropped["duplicate"]) == (2, 1, 1)


def test_a_batch_from_a_non_member_delivers_nothing(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    handler = RecordingHandler("a")
    a = make_transport("a", handler)
    assert a.address is not None
    dealer = raw_dealer(a.address)
    dealer.send(encode_batch(1, "stranger", [tell("stranger", 2, "x"), tell("stranger", 3, "y")]))
    assert log_watcher.wait_for("not a member", count=2)
    assert handler.deliveries == []
    dealer.send(hello("stranger", 4))  # control: once a member, its batches are delivered
    dealer.send(encode_batch(5, "stranger", [tell("stranger", 6, "z"), tell("stranger", 7, "w")]))
    assert handler.wait_for(2)
    assert [message for _, _, message in handler.deliveries] == ["z", "w"]


def test_an_oversized_or_malformed_batch_is_dropped_whole_and_the_node_serves_on(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    handler = RecordingHandler("a")
    a, dealer = ghost_member(make_transport, raw_dealer, handler)
    dealer.send(raw_batch("ghost", [tell("ghost", 10 + i, i) for i in range(MAX_BATCH + 1)]))
    dealer.send(raw_batch("ghost", [tell("ghost", 5000, "x"), "a str, not bin"]))
    dealer.send(encode_batch(3, "ghost", [tell("ghost", 6000, "after")]))
    assert handler.wait_for(1)
    assert [message for _, _, message in handler.deliveries] == ["after"]
    assert a.stats().frames_dropped["malformed"] == 2
    assert log_watcher.count("batch body must be") == 2


def test_an_authenticated_node_cannot_send_a_batch_as_another_sender(
    make_transport: MakeTransport,
    security_of: SecurityOf,
    raw_dealer: RawDealer,
    log_watcher: LogWatcher,
) -> None:
    handler = RecordingHandler("victim")
    victim = make_transport("victim", handler, security=security_of("victim"))
    test_node = make_transport("test", security=security_of("test"))
    test_node.join([f"victim@{victim.address}"], timeout=5)
    assert victim.address is not None
    insider = security_of("insider")
    victim_key = security_of("victim").public_key
    dealer = raw_dealer(victim.address, (insider.public_key, insider.secret_key, victim_key))
    # The batch claims "test" (a member): dropped whole, before any item is read.
    dealer.send(encode_batch(30, "test", [tell("test", 31, "spoofed")]))
    assert log_watcher.wait_for("node 'insider' sent a message claiming sender 'test'")
    # Its own batch naming "test" inside: that item is dropped, the valid one delivered.
    dealer.send(hello("insider", 32))
    dealer.send(
        encode_batch(33, "insider", [tell("test", 34, "spoofed"), tell("insider", 35, "ok")])
    )
    assert handler.wait_for(1)
    assert log_watcher.wait_for("of a batch from 'insider' claims sender 'test'")
    assert handler.deliveries == [("insider", "sink", "ok")]
    assert victim.stats().frames_dropped["sender_mismatch"] == 2


def test_tells_refused_for_no_actor_leave_the_replay_window_alone(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """A peer flooding an unknown actor (in batches or frame by frame) must not make the
    node forget the messages it saw: a replay sent after the flood is still dropped."""
    handler = KnowsAbsent("a")
    a, dealer = ghost_member(
        make_transport, raw_dealer, handler, settings=TransportSettings(dedup_window=100)
    )
    dealer.send(tell("ghost", 2, "first"))
    assert handler.wait_for(1)

    def to_nobody(message_id: int) -> bytes:
        return encode_envelope(Envelope(Kind.TELL, message_id, 0, "ghost", "nobody", message_id))

    dealer.send(encode_batch(3, "ghost", [to_nobody(10 + n) for n in range(150)]))
    for n in range(150):
        dealer.send(to_nobody(200 + n))
    dealer.send(tell("ghost", 2, "replayed"))
    dealer.send(tell("ghost", 4, "last"))
    assert handler.wait_for(2)
    assert wait_until(lambda: a.stats().frames_dropped.get("unknown_actor") == 300)
    assert [message for _, _, message in handler.deliveries] == ["first", "last"]
    assert a.stats().frames_dropped["duplicate"] == 1


WELL_FORMED = [PROTOCOL_VERSION, "tell", 7, 0, "ghost", "nobody", 1]


@pytest.mark.parametrize(
    "fields",
    [
        WELL_FORMED,
        [PROTOCOL_VERSION + 1, "tell", 7, 0, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, "ask", 7, 0, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, b"tell", 7, 0, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, "tell", 0, 0, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, "tell", True, 0, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, "tell", 7, 3, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, "tell", 7, False, "ghost", "nobody", 1],
        [PROTOCOL_VERSION, "tell", 7, 0, "other", "nobody", 1],
        [PROTOCOL_VERSION, "tell", 7, 0, "ghost", "", 1],
        [PROTOCOL_VERSION, "tell", 7, 0, "ghost", b"nobody", 1],
        [PROTOCOL_VERSION, "tell", 7, 0, "ghost", "x" * 1025, 1],
        [PROTOCOL_VERSION, "tell", 7, 0, "ghost", "nobody"],
    ],
    ids=[
        "valid",
        "version",
        "kind",
        "kind_bytes",
        "id_zero",
        "id_bool",
        "correlation",
        "correlation_bool",
        "sender",
        "target_empty",
        "target_bytes",
        "target_long",
        "six_fields",
    ],
)
def test_a_tell_is_refused_unchecked_only_if_it_is_one_the_full_checks_accept(
    fields: list[Any],
) -> None:
    """``tell_target`` lets a refusal skip building the Envelope; it must never pass
    an item ``envelope_from_fields`` would refuse (that item is ``malformed``), and
    whatever it does not pass still goes through the full checks."""
    try:
        envelope = envelope_from_fields(fields)
    except ProtocolError:
        envelope = None
    target = tell_target(fields, "ghost")
    if target is not None:
        assert envelope is not None
        assert (envelope.kind, envelope.sender, envelope.target) == (Kind.TELL, "ghost", target)
    assert (target is not None) == (fields is WELL_FORMED)


def test_a_malformed_tell_to_no_actor_in_a_batch_counts_as_malformed(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    handler = KnowsAbsent("a")
    a, dealer = ghost_member(make_transport, raw_dealer, handler)
    bad = msgpack.packb([PROTOCOL_VERSION, "tell", 0, 0, "ghost", "nobody", 1])  # id 0
    good = encode_envelope(Envelope(Kind.TELL, 3, 0, "ghost", "nobody", 1))
    dealer.send(encode_batch(2, "ghost", [bad, good, tell("ghost", 4, "last")]))
    assert handler.wait_for(1)
    assert wait_until(lambda: a.stats().frames_dropped.get("unknown_actor") == 1)
    assert a.stats().frames_dropped["malformed"] == 1
    assert [message for _, _, message in handler.deliveries] == ["last"]
