"""What one I/O turn does for a connection read past its bounds (held frames, bytes).

Real transport, real ROUTER, hand-driven DEALERs on loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from conftest import RawDealer, RecordingHandler

from transport import Envelope, Limits, Reply, Transport
from transport._envelope import PROTOCOL_VERSION, Kind, encode_batch, encode_envelope
from transport._io import _PEER_STEPS, IoLoop

MakeTransport = Callable[..., Transport]


class _CountingHandler(RecordingHandler):
    """Counts (on the I/O thread) the tells to ``count``; ``stall`` blocks that thread."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.done = threading.Event()
        self.expected = 0

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        if target == "stall":
            self.entered.set()
            self.gate.wait(10)
            return True
        if target == "c":
            self.seen.append(message)
            if len(self.seen) == self.expected:
                self.done.set()
            return True
        return False


def _hello(name: str) -> bytes:
    return encode_envelope(
        Envelope(
            Kind.HELLO,
            1,
            0,
            name,
            "",
            {"role": "member", "address": "tcp://127.0.0.1:9", "incarnation": 1},
        )
    )


def _stalled(
    make_transport: MakeTransport, raw_dealer: RawDealer, handler: _CountingHandler
) -> tuple[Transport, IoLoop]:
    """A transport whose I/O thread is held in ``handler`` (a tell to ``stall``) until
    ``handler.gate`` is set: whatever is sent meanwhile piles up in ZeroMQ."""
    a = make_transport("a", handler)
    assert a.address is not None and a._io is not None
    staller = raw_dealer(a.address)
    staller.send(_hello("other"))
    staller.send(encode_envelope(Envelope(Kind.TELL, 2, 0, "other", "stall", None)))
    assert handler.entered.wait(10)
    return a, a._io


def _tells_per_turn(io: IoLoop, handler: _CountingHandler, *, idle_turns: bool) -> list[int]:
    """The tells to ``c`` handled in each I/O turn from now on (turns handling none
    are left out unless ``idle_turns``)."""
    per_turn: list[int] = []
    last = [0]
    tick = io.protocol.tick

    def counting_tick(now: float) -> None:
        count = len(handler.seen)
        if idle_turns or count != last[0]:
            per_turn.append(count - last[0])
        last[0] = count
        tick(now)

    io.protocol.tick = counting_tick  # type: ignore[method-assign]
    return per_turn


@pytest.mark.timeout(60)
def test_an_owed_connection_is_held_to_the_per_turn_step_bound(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """A flooding connection's work per I/O turn stays near ``_PEER_STEPS`` envelopes,
    also once it was read past ``_PEER_HELD`` / ``_HELD_BYTES`` (module docstring:
    "a bounded amount of work per turn (~0.3 ms), not its whole flood")."""
    handler = _CountingHandler("a")
    a, io = _stalled(make_transport, raw_dealer, handler)
    per_turn = _tells_per_turn(io, handler, idle_turns=True)
    flooder = raw_dealer(a.address)
    flooder.send(_hello("g"))
    frames = 1100  # past _PEER_HELD (1000 held frames)
    per_frame = 330  # a batch frame holds max_containers (10,000) bytes at most
    handler.expected = frames * per_frame
    limits = Limits()
    seq = 0
    try:
        for frame in range(frames):
            items = []
            for _ in range(per_frame):
                items.append(msgpack.packb([PROTOCOL_VERSION, "tell", 10 + seq, 0, "g", "c", seq]))
                seq += 1
            flooder.send(encode_batch(10_000_000 + frame, "g", items, limits))
    finally:
        handler.gate.set()
    assert handler.done.wait(40), f"{len(handler.seen)} of {handler.expected} handled"
    assert handler.seen == sorted(handler.seen)  # one connection: in order
    assert len(set(handler.seen)) == handler.expected
    worst = max(per_turn)
    print(f"most tells of the flooder handled in one turn: {worst} (_PEER_STEPS {_PEER_STEPS})")
    print("turns with > 4 * _PEER_STEPS:", sum(1 for n in per_turn if n > 4 * _PEER_STEPS))
    assert io.held_bytes == 0
    assert worst <= 2 * _PEER_STEPS


@pytest.mark.timeout(60)
def test_a_connection_at_its_bound_still_gets_its_steps_per_turn(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """A peer sending plain (non-batch) frames faster than one turn's ``_PEER_STEPS``
    reaches ``_PEER_HELD``; from then on it should still get its steps each turn, not
    one frame per turn (a throughput cliff for a busy but honest peer)."""
    handler = _CountingHandler("a")
    a, io = _stalled(make_transport, raw_dealer, handler)
    per_turn = _tells_per_turn(io, handler, idle_turns=False)
    flooder = raw_dealer(a.address)
    flooder.send(_hello("g"))
    frames = 1900  # what ZeroMQ buffers on both sides (send_hwm + receive_hwm 1000 each)
    handler.expected = frames
    try:
        for seq in range(frames):
            flooder.send(encode_envelope(Envelope(Kind.TELL, 10 + seq, 0, "g", "c", seq)))
    finally:
        handler.gate.set()
    assert handler.done.wait(40), f"{len(handler.seen)} of {handler.expected} handled"
    assert handler.seen == list(range(frames))
    single = sum(1 for n in per_turn if n == 1)
    print(f"turns that handled the flood: {len(per_turn)}; of them handling 1 frame: {single}")
    assert len(per_turn) <= 4 * frames // _PEER_STEPS


class _PerSenderHandler(_CountingHandler):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.by_sender: dict[str, list[int]] = {}

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        if target == "c":
            self.by_sender.setdefault(sender, []).append(message)
        if target == "pad":
            return True
        return super().deliver_nowait(sender, target, message, reply)


@pytest.mark.timeout(90)
def test_several_flooders_past_the_bounds_lose_and_reorder_nothing(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """Three connections, plain and batch frames mixed, read past _PEER_HELD and
    _HELD_BYTES: every tell arrives once, in each sender's order; nothing stays held."""
    handler = _PerSenderHandler("a")
    a, io = _stalled(make_transport, raw_dealer, handler)
    limits = Limits()
    senders = ["f0", "f1", "f2"]
    dealers = [raw_dealer(a.address) for _ in senders]
    for dealer, name in zip(dealers, senders, strict=True):
        dealer.send(_hello(name))

    def want(name: str) -> list[int]:
        seq, out = 0, []
        for round_ in range(600):
            if round_ % 3 == 0:
                out.extend(range(seq, seq + 200))
                seq += 201
            else:
                out.append(seq)
                seq += 2
        return out

    wanted = {name: want(name) for name in senders}
    handler.expected = sum(len(v) for v in wanted.values())
    sent = dict.fromkeys(senders, 0)
    pad = "p" * 3000  # plain frames of ~3 KB: the byte bound is reached too
    try:
        for round_ in range(600):
            for dealer, name in zip(dealers, senders, strict=True):
                seq = sent[name]
                if round_ % 3 == 0:
                    items = [
                        msgpack.packb(
                            [PROTOCOL_VERSION, "tell", 10 + seq + i, 0, name, "c", seq + i]
                        )
                        for i in range(200)
                    ]
                    dealer.send(encode_batch(10 + seq + 200, name, items, limits))
                    sent[name] = seq + 201
                else:
                    dealer.send(encode_envelope(Envelope(Kind.TELL, 10 + seq, 0, name, "c", seq)))
                    dealer.send(encode_envelope(Envelope(Kind.TELL, 11 + seq, 0, name, "pad", pad)))
                    sent[name] = seq + 2
    finally:
        handler.gate.set()

    assert handler.done.wait(60), f"{len(handler.seen)} of {handler.expected}"
    for name in senders:
        assert handler.by_sender[name] == wanted[name], name
    assert io.held_bytes == 0
