"""Transports in this process on loopback: local delivery, asks, joins, dedup, lifecycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from conftest import EventLog, LogWatcher, RawDealer, RecordingHandler

from tests.support import wait_until
from transport import (
    ActorNotFound,
    Address,
    AskTimeout,
    Envelope,
    NodeDown,
    OutboxFull,
    ProtocolError,
    RemoteError,
    Reply,
    Transport,
    TransportSettings,
)
from transport._envelope import PROTOCOL_VERSION, Kind, encode_envelope

MakeTransport = Callable[..., Transport]


def pair(make_transport: MakeTransport) -> tuple[Transport, Transport]:
    a = make_transport("a")
    b = make_transport("b")
    b.join([a.address], timeout=5)
    return a, b


def test_local_ask_and_tell_go_through_the_handler(make_transport: MakeTransport) -> None:
    handler = RecordingHandler("solo")
    solo = make_transport("solo", handler)
    assert solo.ask(Address("solo", "echo"), (1, "x"), timeout=2).result(3) == ["solo", (1, "x")]
    solo.tell(Address("solo", "sink"), {"k": 1})
    assert handler.wait_for(2)
    assert handler.deliveries[1] == ("solo", "sink", {"k": 1})


def test_local_errors_look_like_remote_ones(make_transport: MakeTransport) -> None:
    solo = make_transport("solo")
    with pytest.raises(ActorNotFound):
        solo.ask(Address("solo", "nobody"), 1, timeout=2).result(3)
    with pytest.raises(RemoteError) as caught:
        solo.ask(Address("solo", "fail"), 1, timeout=2).result(3)
    assert caught.value.type_name == "ValueError"
    assert "refused 1" in caught.value.remote_traceback
    assert caught.value.node == "solo"


def test_a_transport_without_listen_delivers_locally_but_cannot_join(
    make_transport: MakeTransport,
) -> None:
    solo = make_transport("solo", listen=None)
    assert solo.address is None
    assert solo.ask(Address("solo", "echo"), 1, timeout=2).result(3) == ["solo", 1]
    with pytest.raises(ValueError, match="listen"):
        solo.join(["tcp://127.0.0.1:1"], timeout=1)


def test_an_unanswered_ask_fails_with_ask_timeout_near_its_deadline(
    make_transport: MakeTransport,
) -> None:
    a, _ = pair(make_transport)
    started = time.monotonic()
    future = a.ask(Address("b", "hold"), 1, timeout=0.3)
    with pytest.raises(AskTimeout):
        future.result(5)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert a.stats().in_flight_asks == 0


class LaterHandler:
    """Answers asks later from another thread, twice: only the first answer counts."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        assert reply is not None

        def answer() -> None:
            reply.ok(message * 2)
            reply.error(RuntimeError("too late"))
            reply.ok("also too late")

        thread = threading.Thread(target=answer, name="test-later")
        self.threads.append(thread)
        thread.start()


def test_a_reply_may_come_later_from_another_thread_and_the_first_answer_wins(
    make_transport: MakeTransport,
) -> None:
    handler = LaterHandler()
    a = make_transport("a", handler)
    b = make_transport("b")
    b.join([a.address], timeout=5)
    assert b.ask(Address("a", "any"), 21, timeout=2).result(3) == 42
    for thread in handler.threads:
        thread.join(5)


def test_two_nodes_join_ask_tell_and_see_each_other(make_transport: MakeTransport) -> None:
    handler_a = RecordingHandler("a")
    a = make_transport("a", handler_a)
    b = make_transport("b")
    assert a.address is not None
    assert a.address.startswith("tcp://127.0.0.1:")
    assert not a.address.endswith(":0")
    b.join([a.address], timeout=5)
    assert b.members()["a"].status == "up"
    assert b.ask(Address("a", "echo"), [1, (2,)], timeout=2).result(3) == ["a", [1, (2,)]]
    b.tell(Address("a", "sink"), Address("b", "reply-to"))
    assert handler_a.wait_for(2)
    assert handler_a.deliveries[1] == ("b", "sink", Address("b", "reply-to"))
    assert a.members()["b"].status == "up"


def test_remote_errors_carry_type_message_traceback_and_node(make_transport: MakeTransport) -> None:
    _, b = pair(make_transport)
    with pytest.raises(ActorNotFound):
        b.ask(Address("a", "nobody"), 1, timeout=2).result(3)
    with pytest.raises(RemoteError) as caught:
        b.ask(Address("a", "fail"), "x", timeout=2).result(3)
    assert (caught.value.type_name, caught.value.node) == ("ValueError", "a")
    assert "refused 'x'" in caught.value.message
    assert "Traceback" in caught.value.remote_traceback


def test_sending_to_an_unknown_node_fails_with_node_down(make_transport: MakeTransport) -> None:
    a = make_transport("a")
    with pytest.raises(NodeDown, match="unknown"):
        a.tell(Address("ghost", "x"), 1)
    with pytest.raises(NodeDown, match="unknown"):
        a.ask(Address("ghost", "x"), 1, timeout=1).result(2)


def test_unencodable_messages_raise_protocol_error(make_transport: MakeTransport) -> None:
    _, b = pair(make_transport)
    with pytest.raises(ProtocolError, match="cannot be sent"):
        b.tell(Address("a", "sink"), {1, 2})
    with pytest.raises(ProtocolError):
        b.ask(Address("a", "echo"), object(), timeout=1).result(2)


def test_asks_in_flight_are_bounded(make_transport: MakeTransport) -> None:
    a = make_transport("a", settings=TransportSettings(max_pending_asks=2))
    held = [a.ask(Address("a", "hold"), n, timeout=5) for n in range(2)]
    with pytest.raises(AskTimeout, match="in flight"):
        a.ask(Address("a", "hold"), 3, timeout=5).result(1)
    assert a.stats().in_flight_asks == 2
    a.close()
    for future in held:
        with pytest.raises(NodeDown, match="closed"):
            future.result(2)


def test_leave_marks_the_node_left_not_down(make_transport: MakeTransport) -> None:
    a, b = pair(make_transport)
    events = EventLog()
    a.subscribe(events)
    b.leave(timeout=3)
    assert events.wait_for("b", "left", timeout=3) is not None
    assert a.members()["b"].status == "left"
    with pytest.raises(NodeDown, match="left"):
        b.tell(Address("a", "sink"), 1)
    b.close()
    assert events.wait_for("b", "down", timeout=2.5) is None  # left nodes are not watched


def test_a_short_real_idle_run_has_no_false_down(make_transport: MakeTransport) -> None:
    a, b = pair(make_transport)
    events_a, events_b = EventLog(), EventLog()
    a.subscribe(events_a)
    b.subscribe(events_b)
    # 4 s = 16 probe periods, 4 x the shortest suspicion; long runs are simulated
    # (test_swim_simulation).
    assert events_a.wait_for("b", "down", timeout=4.0) is None
    assert events_b.wait_for("a", "down", timeout=0.1) is None
    assert a.stats().peers["b"].status == "up"


def send_raw(raw_dealer: RawDealer, address: str, envelopes: list[Envelope]) -> None:
    dealer = raw_dealer(address)
    for envelope in envelopes:
        dealer.send(encode_envelope(envelope))


def test_replayed_messages_are_delivered_once(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    handler = RecordingHandler("a")
    a = make_transport("a", handler)
    assert a.address is not None
    hello = Envelope(
        Kind.HELLO,
        1,
        0,
        "ghost",
        "",
        {"role": "member", "address": "tcp://127.0.0.1:9", "incarnation": 1},
    )
    tell = Envelope(Kind.TELL, 2, 0, "ghost", "sink", "once")
    last = Envelope(Kind.TELL, 3, 0, "ghost", "sink", "last")
    send_raw(raw_dealer, a.address, [hello, tell, tell, tell, last])
    assert handler.wait_for(2)
    assert [message for _, _, message in handler.deliveries] == ["once", "last"]
    assert a.stats().frames_dropped["duplicate"] == 2


def test_a_frame_claiming_to_come_from_the_receiver_itself_is_dropped(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    handler = RecordingHandler("a")
    a = make_transport("a", handler)
    assert a.address is not None
    send_raw(raw_dealer, a.address, [Envelope(Kind.TELL, 2, 0, "a", "sink", "spoof")])
    assert log_watcher.wait_for("claiming to come from this node")
    assert handler.deliveries == []


def test_messages_from_non_members_are_dropped(
    make_transport: MakeTransport, raw_dealer: RawDealer, log_watcher: LogWatcher
) -> None:
    handler = RecordingHandler("a")
    a = make_transport("a", handler)
    assert a.address is not None
    raw = msgpack.packb([PROTOCOL_VERSION, "tell", 5, 0, "stranger", "sink", "hi"])
    raw_dealer(a.address).send(raw)
    assert log_watcher.wait_for("not a member")
    assert handler.deliveries == []
    assert a.stats().frames_dropped["not_member"] == 1


def test_start_twice_and_use_after_close_are_refused(make_transport: MakeTransport) -> None:
    a = make_transport("a")
    with pytest.raises(RuntimeError, match="already started"):
        a.start()
    a.close()
    a.close()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        a.tell(Address("a", "sink"), 1)


def test_a_port_already_bound_fails_start_and_leaves_no_threads(
    make_transport: MakeTransport,
) -> None:
    a = make_transport("a")
    clash = Transport("clash", listen=a.address, handler=RecordingHandler(), allow_plaintext=True)
    with pytest.raises(OSError, match="cannot bind"):
        clash.start(timeout=5)
    assert not [t.name for t in threading.enumerate() if t.name.endswith("-clash")]


def test_stats_count_frames_and_report_peers(make_transport: MakeTransport) -> None:
    a, b = pair(make_transport)
    b.ask(Address("a", "echo"), 1, timeout=2).result(3)
    stats = a.stats()
    assert stats.node == "a"
    assert stats.address == a.address
    assert set(stats.peers) == {"b"}
    assert stats.peers["b"].last_heartbeat is not None
    assert stats.frames_in >= 2
    # the welcome, the answer and a's probes of b (one a period)
    assert wait_until(lambda: a.stats().frames_out >= 3, timeout=5)
    assert stats.in_flight_asks == 0


class BlockingHandler(RecordingHandler):
    """``block`` holds the dispatch thread until ``release`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.entered = threading.Event()
        self.release = threading.Event()

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        if target == "block":
            self.entered.set()
            self.release.wait(10)
            return
        super().deliver(sender, target, message, reply)


def test_a_local_tell_into_a_full_dispatch_queue_waits_then_raises_outbox_full(
    make_transport: MakeTransport,
) -> None:
    """Local tells get the same backpressure as remote ones: never a silent drop."""
    handler = BlockingHandler("solo")
    settings = TransportSettings(dispatch_queue_size=2, send_timeout=0.5)
    solo = make_transport("solo", handler, settings=settings)
    solo.tell(Address("solo", "block"), 0)
    assert handler.entered.wait(5)
    solo.tell(Address("solo", "sink"), 1)
    solo.tell(Address("solo", "sink"), 2)  # the queue is full now
    with pytest.raises(OutboxFull, match="dispatch queue full"):
        solo.tell(Address("solo", "sink"), "refused")
    errors: list[BaseException] = []

    def tell_late() -> None:
        try:
            solo.tell(Address("solo", "sink"), 3)
        except BaseException as exc:  # the test's own thread reports, never swallows
            errors.append(exc)

    teller = threading.Thread(target=tell_late)
    teller.start()
    handler.release.set()
    teller.join(5)
    assert not errors
    assert handler.wait_for(3)
    assert [m for _, target, m in handler.deliveries if target == "sink"] == [1, 2, 3]
    assert solo.stats().frames_dropped.get("dispatch_full") == 1
