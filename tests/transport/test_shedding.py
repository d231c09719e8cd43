"""Shedding: tells a peer keeps sending to an actor that is not there are dropped unread.

Past ``shed_budget`` such tells refused within one ``shed_window``, the peer's
tells to that target are dropped before they are decoded (counted ``shed``
against it) for the rest of that window and the next; its other messages, its
tells to other actors and every other peer are handled as before. Nothing here
sleeps: every wait has a deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from conftest import KnowsAbsent, RawDealer, ghost_member, hello

from tests.support import wait_until
from transport import Envelope, Transport, TransportSettings
from transport._envelope import TELL_PREFIX, Kind, encode_batch, encode_envelope
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
    kept = shed.sift("noisy", items)
    assert kept == [(index, items[index]) for index in (1, 2, 3, 4, 6, 7)]
    assert counters.by_peer() == {"noisy": {"shed": 2}}


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


@pytest.mark.parametrize("budget", [-1, 1.5, True])
def test_a_bad_shed_budget_is_refused_naming_it(budget: Any) -> None:
    with pytest.raises(ValueError, match="shed_budget"):
        TransportSettings(shed_budget=budget)


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
    make_transport: MakeTransport, raw_dealer: RawDealer, handler: KnowsAbsent, window: float
) -> tuple[Transport, Any]:
    """Node ``a`` (a budget of 50 a ``window``) and the member ``ghost``, whose tells to
    ``nobody`` it sheds: it had 51 refused."""
    settings = TransportSettings(shed_budget=50, shed_window=window)
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
