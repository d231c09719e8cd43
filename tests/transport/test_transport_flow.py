"""Flow control: a flood of tells to a slow peer is never silently lost.

A receiver whose I/O thread is stalled stops reading; its sender's DEALER
fills up, frames wait in the sender's backlog, and once the outbox bound is
reached ``tell`` blocks the caller (bounded) and then raises ``OutboxFull``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import LOOPBACK, RecordingHandler

from tests.support import wait_until
from transport import Address, NodeDown, OutboxFull, Reply, Transport, TransportSettings

MakeTransport = Callable[..., Transport]

_PAYLOAD = b"x" * 100_000  # big frames: the kernel's socket buffers fill after a few dozen
_SMALL = TransportSettings(send_hwm=5, receive_hwm=5, outbox_size=20, send_timeout=0.3)


class StallingHandler(RecordingHandler):
    """Stalls the receiving I/O thread (a peer that stops reading) while ``gate`` is clear."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = threading.Event()
        self.count = 0
        self.order: list[int] = []

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        self.gate.wait(5)
        self.count += 1
        self.order.append(message[0])
        return True


def _pair(
    make_transport: MakeTransport, handler: Any, settings: TransportSettings = _SMALL
) -> tuple[Transport, Transport]:
    server = make_transport("p1", handler, settings=_SMALL)
    client = make_transport("test", listen=LOOPBACK, settings=settings)
    assert server.address is not None
    client.join([server.address], timeout=10)
    return client, server


def test_a_full_outbox_blocks_the_caller_until_the_peer_catches_up(
    make_transport: MakeTransport,
) -> None:
    handler = StallingHandler("p1")
    # a generous send_timeout: the tells must wait for the stalled peer, not fail
    patient = TransportSettings(send_hwm=5, receive_hwm=5, outbox_size=20, send_timeout=5.0)
    client, _ = _pair(make_transport, handler, patient)
    target = Address("p1", "sink")
    releaser = threading.Timer(0.2, handler.gate.set)
    releaser.start()
    started = time.monotonic()
    sent = 300
    for index in range(sent):
        client.tell(target, [index, _PAYLOAD])
    blocked = time.monotonic() - started
    assert wait_until(lambda: handler.count >= sent, timeout=10), handler.count
    assert handler.order == list(range(sent))  # nothing lost, nothing reordered
    assert blocked >= 0.15  # the caller was held back while the peer stalled
    assert "outbox_full" not in client.stats().frames_dropped


def test_a_peer_that_never_catches_up_makes_tell_raise_outbox_full(
    make_transport: MakeTransport,
) -> None:
    handler = StallingHandler("p1")
    client, _ = _pair(make_transport, handler)
    target = Address("p1", "sink")
    accepted = 0
    try:
        with pytest.raises(OutboxFull) as raised:
            for index in range(1000):
                client.tell(target, [index, _PAYLOAD])
                accepted += 1
        assert isinstance(raised.value, NodeDown)
        assert "outbox" in str(raised.value)
        future = client.ask(target, [accepted, _PAYLOAD], timeout=5)
        with pytest.raises(OutboxFull):
            future.result(1)
    finally:
        handler.gate.set()
    # every tell that returned normally is delivered, in order
    assert wait_until(lambda: handler.count >= accepted, timeout=10), (handler.count, accepted)
    assert handler.order[:accepted] == list(range(accepted))
    # (a heartbeat may be skipped for the full DEALER: "send_queue_full" counts those)
