"""Batch frames within the limits, refused batches retried whole, wake-ups never lost.

Real transports on loopback; every wait has a deadline (no sleeping for events).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from conftest import LOOPBACK, RawDealer, RecordingHandler

from transport import Address, Envelope, Limits, Reply, Transport, TransportSettings
from transport._envelope import PROTOCOL_VERSION, Kind, encode_batch, encode_envelope
from transport._sockets import FULL

MakeTransport = Callable[..., Transport]


def _containers(value: Any) -> int:
    if isinstance(value, list | tuple):
        return 1 + sum(_containers(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(_containers(item) for item in value.values())
    return 0


@pytest.mark.timeout(30)
def test_one_batch_frame_decodes_at_most_max_containers(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """Limits.max_containers bounds "arrays + maps + ext values in the whole frame"
    (the memory/CPU one received frame may cost); a batch must not multiply it."""
    limits = Limits(max_containers=100)
    handler = RecordingHandler("a")
    a = make_transport("a", handler, settings=TransportSettings(limits=limits))
    assert a.address is not None
    dealer = raw_dealer(a.address)
    dealer.send(
        encode_envelope(
            Envelope(
                Kind.HELLO,
                1,
                0,
                "ghost",
                "",
                {"role": "member", "address": "tcp://127.0.0.1:9", "incarnation": 1},
            )
        )
    )
    # 50 items of ~90 bytes, each a tell of 80 empty arrays: 4,050 containers in one
    # frame of ~4.6 KB; the same body sent alone in one frame would be refused.
    items = [
        msgpack.packb([PROTOCOL_VERSION, "tell", 10 + i, 0, "ghost", "sink", [[]] * 80])
        for i in range(50)
    ]
    dealer.send(encode_batch(2, "ghost", items, limits))
    dealer.send(encode_envelope(Envelope(Kind.TELL, 999, 0, "ghost", "sink", "after"), limits))
    with handler._condition:  # "after" follows the batch on the same connection
        assert handler._condition.wait_for(
            lambda: any(message == "after" for _, _, message in handler.deliveries), 5
        )
    decoded = sum(_containers(message) + 1 for _, _, message in handler.deliveries[:-1])
    print("containers decoded from one frame:", decoded, "limit", limits.max_containers)
    assert decoded <= limits.max_containers
    assert a.stats().frames_dropped.get("malformed") == 1  # the batch, as a whole


class _IoStaller(RecordingHandler):
    """Blocks the I/O thread of its node (deliver_nowait runs there) until ``gate`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        if target == "stall":
            self.entered.set()
            self.gate.wait(5)
            return True
        return False


@pytest.mark.timeout(30)
def test_a_tell_right_after_a_full_flush_turn_is_sent_at_once(
    make_transport: MakeTransport,
) -> None:
    """When one flush takes exactly ``_FLUSH_BATCH`` (5000) frames and empties the outbox,
    the 'wake-up pending' flag must not stay set: else the next post skips the eventfd
    and its frame waits for the idle poll timeout (check_interval)."""
    # Rare heartbeats and gossip, a long idle poll: only the wake-up can deliver quickly.
    settings = TransportSettings(
        probe_interval=4.0,
        suspicion_timeout=10.0,
        check_interval=0.45,
        pause_tolerance=0.5,
        gossip_interval=60.0,
    )
    handler = RecordingHandler("p1")
    server = make_transport("p1", handler, settings=settings)
    staller = _IoStaller("test")
    client = make_transport("test", staller, listen=LOOPBACK, settings=settings)
    assert server.address is not None and client.address is not None
    client.join([server.address], timeout=10)
    server.tell(Address("test", "stall"), "hold the client's I/O thread")
    assert staller.entered.wait(5)
    try:
        for index in range(5000):  # exactly one flush turn's worth, queued while stalled
            client.tell(Address("p1", "sink"), index)
    finally:
        staller.gate.set()
    assert handler.wait_for(5000, timeout=10)
    started = time.monotonic()
    client.tell(Address("p1", "sink"), "next")
    assert handler.wait_for(5001, timeout=5)
    latency = time.monotonic() - started
    print(f"latency of the tell after the full flush turn: {latency * 1000:.1f} ms")
    assert latency < 0.1


@pytest.mark.timeout(60)
def test_open_and_close_200_transports_leaks_no_fd() -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def cycle(name: str) -> None:
        transport = Transport(
            name, listen=LOOPBACK, handler=RecordingHandler(name), allow_plaintext=True
        )
        transport.start()
        transport.close()

    cycle("warm-up")
    before = open_fds()
    for index in range(200):
        cycle(f"n{index}")
    after = open_fds()
    print("open fds before", before, "after", after)
    assert after <= before


class _StallingReceiver(RecordingHandler):
    """Stalls the receiving I/O thread (it stops reading) until ``gate`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = threading.Event()
        self.order: list[int] = []
        self.done = threading.Event()
        self.expected = 0

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        self.gate.wait(5)
        self.order.append(message[0])
        if len(self.order) >= self.expected:
            self.done.set()
        return True


@pytest.mark.timeout(60)
def test_batches_refused_by_a_full_dealer_are_retried_whole_in_order(
    make_transport: MakeTransport,
) -> None:
    """Small frames to a stalled peer: whole batches are refused by the full DEALER and
    retried; nothing is lost, duplicated or reordered, and the outbox count returns to 0."""
    small = TransportSettings(send_hwm=5, receive_hwm=5, outbox_size=10_000, send_timeout=10.0)
    receiver = _StallingReceiver("p1")
    receiver.expected = sent = 4000
    server = make_transport("p1", receiver, settings=small)
    client = make_transport("test", listen=LOOPBACK, settings=small)
    assert server.address is not None
    client.join([server.address], timeout=10)
    io = client._io
    assert io is not None
    links = io._links
    try_send = links.try_send
    refusals = [0]
    refused = threading.Event()

    def counting_try_send(key: str, frame: bytes, messages: int = 1) -> int:
        result = try_send(key, frame, messages)
        if result == FULL and messages > 1:
            refusals[0] += 1
            refused.set()
        return result

    links.try_send = counting_try_send  # type: ignore[method-assign]
    payload = b"x" * 1000  # ~7 frames per batch (batches stay under max_containers bytes)

    def release_after_a_refusal() -> None:
        # Not a timer: on a loaded machine the tells may take longer than any fixed
        # delay to fill the DEALER, and then the retry path would never run.
        refused.wait(20)
        receiver.gate.set()

    releaser = threading.Thread(target=release_after_a_refusal)
    releaser.start()
    try:
        for index in range(sent):
            client.tell(Address("p1", "sink"), [index, payload])
    finally:
        releaser.join()
    assert receiver.done.wait(20), len(receiver.order)
    assert receiver.order == list(range(sent))
    deadline = time.monotonic() + 5
    while io.outbox.held() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a counter, bounded by the deadline
    print("frames out", client.stats().frames_out, "batches refused", refusals[0])
    assert refusals[0] > 0  # the retry path was exercised
    assert io.outbox.held() == 0 and not io.outbox._refused
    # only probes may be skipped for the full DEALER (the next period sends another)
    assert set(client.stats().frames_dropped) <= {"send_queue_full"}
