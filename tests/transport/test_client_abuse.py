"""A client must not be able to hurt the member it talks to: a hello under the member's own
name is refused (not a crash of its I/O thread), and a client that never reads its answers
neither fills the member's outbox (blocking members' traffic) nor its memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import zmq

from tests.support import wait_until
from tests.transport.conftest import RawDealer, RecordingHandler
from transport import Address, ClientTransport, Transport, TransportSettings
from transport._envelope import ROLE_CLIENT, Envelope, Kind, decode_envelope, encode_envelope

pytestmark = pytest.mark.timeout(90)


def _client_hello(sender: str, message_id: int = 1) -> bytes:
    body = {"role": ROLE_CLIENT, "incarnation": 7}
    return encode_envelope(Envelope(Kind.HELLO, message_id, 0, sender, "", body))


def test_a_client_hello_under_the_members_own_name_is_refused_not_a_crash(
    make_transport: Callable[..., Transport], raw_dealer: RawDealer
) -> None:
    member = make_transport("m")
    dealer = raw_dealer(str(member.address))
    dealer.send(_client_hello("m"))
    assert dealer.poll(10_000), "the member never answered the hello"
    answer = decode_envelope(dealer.recv())
    assert answer.kind is Kind.ERROR and answer.body.type_name == "runtime.NameInUse"
    # the member is still serving: another client is welcomed and answered
    client = ClientTransport("c", allow_plaintext=True)
    try:
        assert client.connect(str(member.address), timeout=10) == "m"
        assert client.ask("m", "echo", 1, timeout=10).result(11) == ["m", 1]
    finally:
        client.close(0.5)


def test_a_client_that_never_reads_does_not_hold_the_outbox_or_block_members(
    make_transport: Callable[..., Transport], raw_dealer: RawDealer
) -> None:
    settings = TransportSettings(send_hwm=4, outbox_size=40, send_timeout=1.0)
    handler = RecordingHandler("m")
    member = make_transport("m", handler, settings=settings)
    peer = make_transport("peer")
    peer.join([str(member.address)], timeout=10)
    assert wait_until(lambda: "peer" in member.members(), 10)
    dealer = raw_dealer(str(member.address))
    dealer.setsockopt(zmq.RCVHWM, 1)
    dealer.send(_client_hello("greedy"))
    assert dealer.poll(10_000) and decode_envelope(dealer.recv()).kind is Kind.MEMBERS
    # asks whose answers (200 KB each, 40 MB in all) it never reads
    blob = b"x" * 200_000
    asks = 200
    for message_id in range(2, 2 + asks):
        dealer.send(encode_envelope(Envelope(Kind.ASK, message_id, 0, "greedy", "echo", blob)))
    assert handler.wait_for(asks, 30)
    # what the client does not take is dropped, not kept: nothing stays held for it
    assert wait_until(lambda: member.stats().outbox_backlog == 0, 20), member.stats()
    assert member.stats().frames_dropped.get("client_full", 0) > 0
    # and the member's own traffic flows (no OutboxFull)
    for n in range(50):
        member.tell(Address("peer", "sink"), n)
    assert member.ask(Address("peer", "echo"), "hi", timeout=10).result(11) == ["peer", "hi"]
