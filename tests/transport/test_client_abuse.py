"""A client must not be able to hurt the member it talks to: a hello under the member's own
name is refused (not a crash of its I/O thread), and a client that never reads its answers
neither fills the member's outbox (blocking members' traffic) nor its memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.transport.conftest import RawDealer
from transport import ClientTransport, Transport
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
