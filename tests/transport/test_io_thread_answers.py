"""Answers the I/O thread gives itself (refusals: ``ActorNotFound``) reach their asker even
when a frame handled in the same turn ends the conversation (a ``leave``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import zmq

from tests.transport.conftest import KnowsAbsent, RawDealer
from transport import Transport
from transport._envelope import (
    PROBE_KINDS,
    ROLE_CLIENT,
    ROLE_MEMBER,
    Envelope,
    Kind,
    decode_envelope,
    encode_batch,
    encode_envelope,
)

pytestmark = pytest.mark.timeout(60)


def _frame(kind: Kind, message_id: int, sender: str, target: str = "", body: Any = None) -> bytes:
    return encode_envelope(Envelope(kind, message_id, 0, sender, target, body))


def _answers(socket: zmq.Socket[Any], count: int) -> list[Envelope]:
    """The next ``count`` envelopes ``socket`` receives (batches unpacked; the failure
    detector's probes, which may come at any time, left out), 10 s at most."""
    found: list[Envelope] = []
    while len(found) < count and socket.poll(10_000):
        parts = socket.recv_multipart()
        envelope = decode_envelope(parts[-1])
        items = envelope.body if envelope.kind is Kind.BATCH else [parts[-1]]
        found.extend(
            item
            for item in map(decode_envelope, items)
            if item.kind not in PROBE_KINDS and item.kind is not Kind.HEARTBEAT
        )
    return found


def _ask_nobody_then_leave(
    member: Transport, dealer: zmq.Socket[Any], sender: str, answered_on: zmq.Socket[Any]
) -> None:
    """``sender`` asks an actor that is not there, then leaves, in one batch (one turn):
    the refusal must reach it on ``answered_on`` before the leave's reply."""
    ask, leave = _frame(Kind.ASK, 2, sender, "nobody", 1), _frame(Kind.LEAVE, 3, sender)
    dealer.send(encode_batch(4, sender, [ask, leave]))
    answers = _answers(answered_on, 2)
    assert [(a.kind, a.correlation_id) for a in answers] == [(Kind.ERROR, 2), (Kind.REPLY, 3)]
    assert answers[0].body.type_name == "runtime.ActorNotFound"
    assert member.stats().frames_dropped.get("no_route", 0) == 0


def test_a_clients_ask_refused_before_its_leave_is_answered(
    make_transport: Callable[..., Transport], raw_dealer: RawDealer
) -> None:
    member = make_transport("m", KnowsAbsent("m"))
    dealer = raw_dealer(str(member.address))
    dealer.send(_frame(Kind.HELLO, 1, "c", body={"role": ROLE_CLIENT, "incarnation": 7}))
    assert [a.kind for a in _answers(dealer, 1)] == [Kind.MEMBERS]
    _ask_nobody_then_leave(member, dealer, "c", dealer)


def test_a_members_ask_refused_before_its_leave_is_answered(
    make_transport: Callable[..., Transport], raw_dealer: RawDealer
) -> None:
    member = make_transport("m", KnowsAbsent("m"))
    context: zmq.Context[Any] = zmq.Context()
    router: zmq.Socket[Any] = context.socket(zmq.ROUTER)
    try:
        router.setsockopt(zmq.LINGER, 0)
        router.bind("tcp://127.0.0.1:0")
        address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        dealer = raw_dealer(str(member.address))
        body = {"role": ROLE_MEMBER, "address": address, "incarnation": 7}
        dealer.send(_frame(Kind.HELLO, 1, "p", body=body))
        assert [a.kind for a in _answers(router, 1)] == [Kind.MEMBERS]
        _ask_nobody_then_leave(member, dealer, "p", router)
    finally:
        router.close(linger=0)
        context.term()
