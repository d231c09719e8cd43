"""Shedding: tells a peer keeps sending to an actor that is not there are dropped unread.

Past ``shed_budget`` such tells refused within one ``shed_window``, the peer's
tells to that target are dropped before they are decoded (counted ``shed``
against it) for the rest of that window and the next; its other messages, its
tells to other actors and every other peer are handled as before. Nothing here
sleeps: every wait has a deadline.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import random
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import KnowsAbsent, RawDealer, ghost_member, hello

from tests.support import wait_until
from transport import Envelope, ProtocolError, RemoteError, Transport, TransportSettings
from transport._envelope import TELL_PREFIX, Kind, decode_envelope, encode_batch, encode_envelope
from transport._ratelog import RateLimitedLog
from transport._shedding import Shedding
from transport._stats import Counters

MakeTransport = Callable[..., Transport]


def envelope(kind: Kind, sender: str, message_id: int, target: str, body: Any) -> bytes:
    return encode_envelope(Envelope(kind, message_id, 0, sender, target, body))


def to_nobody(sender: str, first_id: int, count: int) -> bytes:
    """A batch of ``count`` tells to the actor that is not there."""
    tells = [envelope(Kind.TELL, sender, first_id + n, "nobody", n) for n in range(count)]
    return encode_batch(first_id + count, sender, tells)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shedding(budget: int = 10, window: float = 1.0) -> tuple[Shedding, Clock, Counters]:
    clock, counters = Clock(), Counters()
    log = RateLimitedLog(logging.getLogger("transport.test_shedding"))
    return Shedding("node", budget, window, now=clock, counters=counters, log=log), clock, counters


# -- the budget ---------------------------------------------------------------------------


def test_a_peer_within_its_budget_is_not_shed() -> None:
    shed, clock, _ = shedding(budget=10)
    shed.note("noisy", "nobody", 6)
    shed.note("noisy", "nobody", 4)
    shed.note("noisy", "other", 9)  # counted apart: a budget per target
    assert not shed.active and not shed.shed("noisy", "nobody") and not shed.sheds("noisy")
    clock.now += 1.0  # a new window: the count starts again
    shed.note("noisy", "nobody", 10)
    assert not shed.shed("noisy", "nobody")


def test_past_its_budget_a_target_is_shed_for_the_rest_of_the_window_and_the_next() -> None:
    shed, clock, _ = shedding(budget=10, window=1.0)
    shed.note("quiet", "nobody", 1)  # the window runs from 100.0 to 101.0
    clock.now = 100.5
    shed.note("noisy", "nobody", 11)
    assert shed.active and shed.shed("noisy", "nobody") and shed.sheds("noisy")
    assert not shed.shed("noisy", "other") and not shed.shed("quiet", "nobody")
    assert not shed.sheds("quiet")
    assert shed.peers() == ("noisy",)
    clock.now = 101.9
    assert shed.shed("noisy", "nobody")
    clock.now = 102.0
    assert not shed.shed("noisy", "nobody") and not shed.sheds("noisy")
    assert not shed.active and shed.peers() == ()


def test_a_budget_of_zero_never_sheds() -> None:
    shed, _, _ = shedding(budget=0)
    shed.note("noisy", "nobody", 10**9)
    assert not shed.active and not shed.shed("noisy", "nobody")


@pytest.mark.parametrize("message_id", [1, 127, 128, 255, 256, 65_536, 2**32, 2**63 - 1])
def test_sift_drops_only_the_tells_to_a_shed_target_and_keeps_the_rest_in_order(
    message_id: int,
) -> None:
    shed, _, counters = shedding(budget=1)
    shed.note("noisy", "nobody", 2)
    shed.note("noisy", "gone", 2)
    items = [
        envelope(Kind.TELL, "noisy", message_id, "nobody", 1),
        envelope(Kind.ASK, "noisy", message_id, "nobody", 2),
        envelope(Kind.TELL, "noisy", message_id, "sink", "nobody"),
        b"not msgpack at all",
        TELL_PREFIX,
        envelope(Kind.TELL, "noisy", message_id, "gone", {"tell": "nobody"}),
        envelope(Kind.TELL, "other", message_id, "nobody", 3),  # another sender
        envelope(Kind.TELL, "noisy", message_id, "nobody2", 4),
    ]
    kept = list(shed.sift("noisy", items, lambda peer, target: True))
    assert kept == [(index, items[index]) for index in (1, 2, 3, 4, 6, 7)]
    assert counters.by_peer() == {"noisy": {"shed": 2}}


_SHED_TARGETS = ("nobody", "x" * 31, "x" * 32, "é" * 16, "a/" * 200, "y" * 1024)
_NEAR_TARGETS = ("nobody2", "nobod", "x" * 30, "x" * 33, "é" * 15, "$nobody", "NOBODY")
_IDS = (1, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63 - 1)


def _odd_str(text: str, rng: random.Random) -> bytes:
    """``text`` as msgpack may also encode it: str8, str16 or str32 whatever its length."""
    data = text.encode()
    header = rng.choice([b"", b"\xd9", b"\xda", b"\xdb"])
    if header == b"\xd9" and len(data) < 256:
        return header + bytes([len(data)]) + data
    if header == b"\xda":
        return header + struct.pack(">H", len(data)) + data
    if header == b"\xdb":
        return header + struct.pack(">I", len(data)) + data
    return msgpack.packb(text)


def _random_item(rng: random.Random, peer: str) -> bytes:
    """An envelope of any kind, id width, sender and target; now and then encoded another
    way msgpack allows, cut short, lengthened or with a byte changed."""
    kind = rng.choice([Kind.TELL] * 4 + [Kind.ASK, Kind.REPLY, Kind.ERROR])
    sender = rng.choice([peer, peer, peer + "x", peer[:-1], "other", "é" * 40])
    target = rng.choice(_SHED_TARGETS + _NEAR_TARGETS + ("".join(rng.choices("ab/$é", k=40)),))
    message_id = rng.choice((*_IDS, rng.randrange(1, 2**63)))
    body = rng.choice([None, 7, "nobody", {"tell": target}, b"\x97", [sender, target]])
    if kind is Kind.REPLY or kind is Kind.ERROR:
        answer = body if kind is Kind.REPLY else RemoteError("KeyError", target)
        item = encode_envelope(Envelope(kind, message_id, 3, sender, "", answer))
    elif rng.random() < 0.3:  # the same fields, encoded another way
        fields = [
            b"\x97\x05",
            _odd_str(kind.value, rng),
            rng.choice([msgpack.packb(message_id), b"\xcf" + struct.pack(">Q", message_id)]),
            rng.choice([b"\x00", b"\xcc\x00", b"\xd0\x00"]),
            _odd_str(sender, rng),
            _odd_str(target, rng),
            msgpack.packb(body),
        ]
        item = b"".join(fields)
    else:
        item = envelope(kind, sender, message_id, target, body)
    damage = rng.random()
    if damage < 0.05:
        item = item[: rng.randrange(len(item))]
    elif damage < 0.08:
        item += bytes([rng.randrange(256)])
    elif damage < 0.1:
        at = rng.randrange(len(item))
        item = item[:at] + bytes([rng.randrange(256)]) + item[at + 1 :]
    return item


@pytest.mark.parametrize("seed", range(5))
def test_sift_drops_exactly_the_well_formed_tells_of_the_peer_to_a_shed_target(seed: int) -> None:
    """Against ``decode_envelope``: every item sift drops is a tell from the peer to a
    shed target, or an item the usual way drops anyway (``malformed``); every tell
    there as ``encode_envelope`` writes it is dropped; no item makes it fail."""
    rng = random.Random(seed)
    peer = rng.choice(["ghost", "g" * 31, "g" * 32, "é" * 64])
    shed, _, counters = shedding(budget=1)
    for target in _SHED_TARGETS:
        shed.note(peer, target, 2)
    items = [_random_item(rng, peer) for _ in range(2000)]
    items += [TELL_PREFIX + bytes([first]) for first in range(256)]  # cut right after
    kept = {index for index, _ in shed.sift(peer, items, lambda peer, target: True)}
    shed_tells = 0
    for index, item in enumerate(items):
        try:
            decoded: Envelope | None = decode_envelope(item)
        except ProtocolError:
            decoded = None
        if decoded is None:
            continue  # dropped either way
        is_shed_tell = (
            decoded.kind is Kind.TELL and decoded.sender == peer and decoded.target in _SHED_TARGETS
        )
        shed_tells += is_shed_tell
        if index not in kept:
            assert is_shed_tell, (decoded, item)
        elif is_shed_tell:
            assert item != encode_envelope(decoded), decoded
    assert shed_tells > 100
    assert counters.by_peer() == {peer: {"shed": len(items) - len(kept)}}


def test_sift_keeps_a_tell_the_inbox_would_not_refuse_now() -> None:
    """Looked up before the first item and after each item kept: once a kept item
    queued a ``$``-path message (which may start the actor), the tells behind it are
    kept too."""
    shed, _, counters = shedding(budget=1)
    shed.note("noisy", "nobody", 2)
    spawn_waits = [False]
    items = [
        envelope(Kind.TELL, "noisy", 1, "nobody", 1),
        envelope(Kind.TELL, "noisy", 2, "$system", "spawn"),
        envelope(Kind.TELL, "noisy", 3, "nobody", 3),
    ]
    kept = []
    for index, _item in shed.sift("noisy", items, lambda peer, target: not spawn_waits[0]):
        kept.append(index)
        spawn_waits[0] = index == 1  # handling the spawn queued it
    assert kept == [1, 2]
    assert counters.by_peer() == {"noisy": {"shed": 1}}
    assert list(shed.sift("noisy", items, lambda peer, target: False)) == list(enumerate(items))


def test_the_tell_prefix_is_how_every_tell_begins_and_no_other_kind() -> None:
    for kind in Kind:
        if kind in (Kind.TELL, Kind.ASK):
            target, body, correlation = "a/b", {"x": [1, b"2"]}, 0
        elif kind in (Kind.REPLY, Kind.ERROR):
            target, body, correlation = "", None, 3
        else:
            continue
        encoded = encode_envelope(Envelope(kind, 7, correlation, "n", target, body))
        assert encoded.startswith(TELL_PREFIX) == (kind is Kind.TELL), kind


def test_peers_is_read_whole_while_the_io_thread_sheds_another_pair() -> None:
    """``stats()`` reads ``peers`` on another thread. A thread switch may come in the
    middle of its reading (a GC pass there runs Python code): the I/O thread shedding
    another pair then must not make it fail. The GC callback plays that I/O thread."""
    shed, _, _ = shedding(budget=1)
    for n in range(100):
        shed.note(f"peer{n}", "nobody", 2)
    targets = iter(range(1000))

    def io_thread_meanwhile(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            shed.note("late", f"target{next(targets)}", 2)

    threshold = gc.get_threshold()
    gc.callbacks.append(io_thread_meanwhile)
    gc.set_threshold(1)  # a GC pass at (nearly) every allocation
    try:
        for _ in range(20):
            assert len(shed.peers()) >= 100
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(io_thread_meanwhile)
    assert "late" in shed.peers()


@pytest.mark.parametrize("budget", [-1, 1.5, True])
def test_a_bad_shed_budget_is_refused_naming_it(budget: Any) -> None:
    with pytest.raises(ValueError, match="shed_budget"):
        TransportSettings(shed_budget=budget)


def test_the_protocol_document_lists_every_setting_default() -> None:
    """PROTOCOL.md 15 lists the defaults of ``TransportSettings`` (``limits``: 9)."""
    document = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text()
    defaults = document.split("## 15.")[1].split("## 16.")[0]
    missing = [
        field.name
        for field in dataclasses.fields(TransportSettings)
        if field.name != "limits" and f"`{field.name}`" not in defaults
    ]
    assert missing == []


# -- on a running node ---------------------------------------------------------------------


def test_a_peer_past_its_budget_is_shed_and_the_others_are_served(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """A peer that had 101 tells to ``nobody`` refused (budget 100) sees its next tells
    there dropped unread, batched or alone, while its asks and its tells to other
    actors still arrive; another member's tells are delivered all the while."""
    handler = KnowsAbsent("a")
    settings = TransportSettings(shed_budget=100, shed_window=60.0)
    a, ghost = ghost_member(make_transport, raw_dealer, handler, settings=settings)
    other = raw_dealer(a.address)
    other.send(hello("other"))
    ghost.send(to_nobody("ghost", 10, 101))
    assert wait_until(lambda: a.stats().shed_peers == ("ghost",))
    assert a.stats().dropped_by_peer["ghost"] == {"unknown_actor": 101}

    ghost.send(
        encode_batch(
            300,
            "ghost",
            [
                envelope(Kind.TELL, "ghost", 200, "nobody", "shed in a batch"),
                envelope(Kind.TELL, "ghost", 201, "sink", "served in a batch"),
                envelope(Kind.ASK, "ghost", 202, "sink", "asked"),
                envelope(Kind.TELL, "ghost", 203, "nobody", "shed too"),
            ],
        )
    )
    ghost.send(envelope(Kind.TELL, "ghost", 204, "nobody", "shed alone"))
    other.send(envelope(Kind.TELL, "other", 2, "nobody", "refused"))
    other.send(envelope(Kind.TELL, "other", 3, "sink", "served"))
    ghost.send(envelope(Kind.TELL, "ghost", 205, "sink", "served alone"))
    assert handler.wait_for(4)
    assert sorted(handler.deliveries) == [
        ("ghost", "sink", "asked"),
        ("ghost", "sink", "served alone"),
        ("ghost", "sink", "served in a batch"),
        ("other", "sink", "served"),
    ]
    assert wait_until(lambda: a.stats().frames_dropped.get("unknown_actor") == 102)
    stats = a.stats()
    assert stats.dropped_by_peer["ghost"] == {"unknown_actor": 101, "shed": 3}
    assert stats.dropped_by_peer["other"] == {"unknown_actor": 1}
    assert stats.frames_dropped["shed"] == 3


def shed_ghost(
    make_transport: MakeTransport,
    raw_dealer: RawDealer,
    handler: KnowsAbsent,
    window: float,
    **options: Any,
) -> tuple[Transport, Any]:
    """Node ``a`` (a budget of 50 a ``window``, other settings in ``options``) and the
    member ``ghost``, whose tells to ``nobody`` it sheds: it had 51 refused."""
    settings = TransportSettings(shed_budget=50, shed_window=window, **options)
    a, ghost = ghost_member(make_transport, raw_dealer, handler, settings=settings)
    ghost.send(to_nobody("ghost", 10, 51))
    assert wait_until(lambda: a.stats().shed_peers == ("ghost",))
    return a, ghost


def test_once_the_shedding_ends_the_tells_are_looked_at_again(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    handler = KnowsAbsent("a")
    a, ghost = shed_ghost(make_transport, raw_dealer, handler, window=0.2)
    assert wait_until(lambda: a.stats().shed_peers == (), timeout=10.0)  # within 0.4 s
    ghost.send(to_nobody("ghost", 100, 1))
    ghost.send(envelope(Kind.TELL, "ghost", 200, "sink", "last"))
    assert handler.wait_for(1)
    assert wait_until(lambda: a.stats().dropped_by_peer["ghost"].get("unknown_actor") == 52)
    assert "shed" not in a.stats().dropped_by_peer["ghost"]


class Appears(KnowsAbsent):
    """No actor at ``nobody`` until ``arrive()``: then it records like ``sink``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.arrived = False

    def arrive(self) -> None:
        self.arrived = True

    def absent(self, target: str) -> bool:
        return target == "nobody" and not self.arrived

    def deliver(self, sender: str, target: str, message: Any, reply: Any) -> None:
        super().deliver(sender, "sink" if target == "nobody" else target, message, reply)


def test_an_actor_started_at_a_shed_target_gets_the_tells_again(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    handler = Appears("a")
    a, ghost = shed_ghost(make_transport, raw_dealer, handler, window=60.0)
    handler.arrive()
    assert wait_until(lambda: a.stats().shed_peers == ())  # at the next periodic check
    ghost.send(envelope(Kind.TELL, "ghost", 100, "nobody", "welcome"))
    assert handler.wait_for(1)
    assert handler.deliveries == [("ghost", "sink", "welcome")]


# -- a spawn told to ``$system``: what the inbox would not refuse is never shed --------------

# The periodic check (which ends a shedding whose actor appeared) out of the way: these
# tests show the tells need not wait for it.
RARE_CHECKS = {"check_interval": 20.0, "pause_tolerance": 30.0, "suspicion_timeout": 60.0}


class Spawns(KnowsAbsent):
    """No actor at ``nobody`` until a tell to ``$system`` starts one there (on the
    dispatch thread, once ``go`` is set); every delivery is recorded as
    ``"<target>: <message>"`` to ``sink``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.started = False
        self.spawning = threading.Event()
        self.go = threading.Event()

    def absent(self, target: str) -> bool:
        return target == "nobody" and not self.started

    def deliver(self, sender: str, target: str, message: Any, reply: Any) -> None:
        if target == "$system":
            self.spawning.set()
            self.go.wait(30.0)
            self.started = True
        super().deliver(sender, "sink", f"{target}: {message}", reply)


def test_tells_behind_a_spawn_told_in_the_same_batch_reach_the_actor_it_starts(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """PROTOCOL.md 13: a tell behind a ``$``-path message of its sender waits its turn
    and reaches the actor that message started; shed or not."""
    handler = Spawns("a")
    handler.go.set()
    a, ghost = shed_ghost(make_transport, raw_dealer, handler, 60.0, **RARE_CHECKS)
    spawn_then_tells = [
        envelope(Kind.TELL, "ghost", 100, "$system", "spawn"),
        envelope(Kind.TELL, "ghost", 101, "nobody", "first"),
        envelope(Kind.TELL, "ghost", 102, "nobody", "second"),
    ]
    ghost.send(encode_batch(103, "ghost", spawn_then_tells))
    assert handler.wait_for(3), handler.deliveries
    assert [message for _, _, message in handler.deliveries] == [
        "$system: spawn",
        "nobody: first",
        "nobody: second",
    ]
    assert "shed" not in a.stats().dropped_by_peer["ghost"]


def test_a_tell_behind_a_spawn_still_waiting_is_not_shed(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """The same, frame by frame, while the spawn runs on the dispatch thread: the tell
    waits behind it instead of being dropped unread."""
    handler = Spawns("a")
    a, ghost = shed_ghost(make_transport, raw_dealer, handler, 60.0, **RARE_CHECKS)
    ghost.send(envelope(Kind.TELL, "ghost", 100, "$system", "spawn"))
    assert handler.spawning.wait(10.0)
    ghost.send(envelope(Kind.TELL, "ghost", 101, "nobody", "first"))
    assert wait_until(  # handled: queued behind the spawn (or, wrongly, shed)
        lambda: a.stats().dispatch_queue_depth == 1 or "shed" in a.stats().frames_dropped
    )
    handler.go.set()
    assert handler.wait_for(2), handler.deliveries
    assert [message for _, _, message in handler.deliveries] == ["$system: spawn", "nobody: first"]
    assert "shed" not in a.stats().dropped_by_peer["ghost"]


def test_tells_to_an_actor_started_meanwhile_are_delivered_before_the_next_check(
    make_transport: MakeTransport, raw_dealer: RawDealer
) -> None:
    """Once the spawn ran, the tells to its actor arrive, batched or alone: not dropped
    unread until the periodic check notices the actor (20 s away here)."""
    handler = Spawns("a")
    handler.go.set()
    a, ghost = shed_ghost(make_transport, raw_dealer, handler, 60.0, **RARE_CHECKS)
    ghost.send(envelope(Kind.TELL, "ghost", 100, "$system", "spawn"))
    assert handler.wait_for(1)
    ghost.send(to_nobody("ghost", 200, 3))
    ghost.send(envelope(Kind.TELL, "ghost", 300, "nobody", "alone"))
    assert handler.wait_for(5), handler.deliveries
    assert [message for _, _, message in handler.deliveries] == [
        "$system: spawn",
        "nobody: 0",
        "nobody: 1",
        "nobody: 2",
        "nobody: alone",
    ]
    assert "shed" not in a.stats().dropped_by_peer["ghost"]
