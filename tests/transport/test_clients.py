"""The client role on the wire: a client is answered over its own connection, is never a
member, and what a member keeps for clients is bounded (sessions, idle expiry)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_until
from tests.transport.conftest import RawDealer, RecordingHandler
from transport import (
    Address,
    ClientTransport,
    Envelope,
    NameInUse,
    NodeDown,
    Overloaded,
    Transport,
    TransportSettings,
    generate_keys,
    load_security,
)
from transport._envelope import Kind, decode_envelope, encode_envelope

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def make_client() -> Iterator[Callable[..., ClientTransport]]:
    made: list[ClientTransport] = []

    def make(name: str, **options: Any) -> ClientTransport:
        if options.get("security") is None:
            options.setdefault("allow_plaintext", True)
        client = ClientTransport(name, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(0.5)


def test_a_client_asks_without_listening_and_never_becomes_a_member(
    make_transport: Callable[..., Transport], make_client: Callable[..., ClientTransport]
) -> None:
    handler = RecordingHandler("m")
    member = make_transport("m", handler)
    client = make_client("c")
    assert client.connect(str(member.address), timeout=10) == "m"
    assert client.ask("m", "echo", {"x": 1}, timeout=10).result(11) == ["m", {"x": 1}]
    assert handler.deliveries == [("c", "echo", {"x": 1})]
    assert set(member.members()) == {"m"}
    assert member.stats().clients == 1
    client.close()
    assert wait_until(lambda: member.stats().clients == 0, 10)
    assert set(member.members()) == {"m"}


def test_a_client_named_like_a_member_is_refused(
    make_transport: Callable[..., Transport], make_client: Callable[..., ClientTransport]
) -> None:
    seed = make_transport("seed")
    other = make_transport("other")
    other.join([str(seed.address)], timeout=10)
    with pytest.raises(NameInUse, match="is a member"):
        make_client("other").connect(str(seed.address), timeout=10)
    assert seed.members()["other"].status == "up"


def test_client_sessions_are_bounded_and_expire_when_idle(
    make_transport: Callable[..., Transport], make_client: Callable[..., ClientTransport]
) -> None:
    settings = TransportSettings(max_clients=2, client_idle_after=1.0)
    member = make_transport("m", RecordingHandler("m"), settings=settings)
    for name in ("c1", "c2"):
        make_client(name).connect(str(member.address), timeout=10)
    with pytest.raises(Overloaded, match="too many client sessions"):
        make_client("c3").connect(str(member.address), timeout=10)
    assert member.stats().frames_dropped["refused_client"] == 1
    # clients that vanish without a word (and heartbeat every 5 s) are forgotten after 1 s
    assert wait_until(lambda: member.stats().clients == 0, 10)
    make_client("c4").connect(str(member.address), timeout=10)
    assert member.stats().clients == 1


def test_one_client_name_cannot_take_every_session(
    make_transport: Callable[..., Transport], make_client: Callable[..., ClientTransport]
) -> None:
    """Connections of one name (with CURVE: one key) stop at max_clients_per_name; other
    clients still get sessions, and a closed session gives its room back."""
    settings = TransportSettings(max_clients=10, max_clients_per_name=2)
    member = make_transport("m", RecordingHandler("m"), settings=settings)
    greedy = [make_client("greedy") for _ in range(3)]
    for client in greedy[:2]:
        client.connect(str(member.address), timeout=10)
    with pytest.raises(Overloaded, match="too many sessions of client 'greedy'"):
        greedy[2].connect(str(member.address), timeout=10)
    other = make_client("other")
    other.connect(str(member.address), timeout=10)
    assert other.ask("m", "echo", 1, timeout=10).result(11) == ["m", 1]
    assert member.stats().clients == 3
    greedy[0].close()
    assert wait_until(lambda: member.stats().clients == 2, 10)
    greedy[2].connect(str(member.address), timeout=10)
    assert member.stats().clients == 3


def test_a_curve_client_authenticates_with_its_own_allowlisted_key(
    tmp_path: Path,
    make_transport: Callable[..., Transport],
    make_client: Callable[..., ClientTransport],
) -> None:
    keys = tmp_path / "keys"
    for name in ("m", "admin"):
        generate_keys(keys, name)
    member = make_transport("m", RecordingHandler("m"), security=load_security(keys, "m"))
    seed = f"m@{member.address}"
    admin = make_client("admin", security=load_security(keys, "admin"))
    admin.connect(seed, timeout=10)
    assert admin.ask("m", "echo", 1, timeout=10).result(11) == ["m", 1]
    # a key pair the member's allowlist lacks: the handshake fails, nothing is admitted
    strangers = tmp_path / "stranger-keys"
    generate_keys(strangers, "stranger")
    shutil.copy(keys / "m.key", strangers / "m.key")
    stranger = make_client("stranger", security=load_security(strangers, "stranger"))
    with pytest.raises(NodeDown, match="allowlist"):
        stranger.connect(seed, timeout=2)
    assert wait_until(lambda: member.stats().frames_dropped.get("handshake_failed", 0) > 0, 10)
    assert member.stats().clients == 1 and set(member.members()) == {"m"}


def test_a_member_sends_nothing_to_a_client_but_answers(
    make_transport: Callable[..., Transport], make_client: Callable[..., ClientTransport]
) -> None:
    member = make_transport("m", RecordingHandler("m"))
    client = make_client("c")
    client.connect(str(member.address), timeout=10)
    with pytest.raises(NodeDown):
        member.tell(Address("c", "anything"), "hi")  # a client is no node to send to


def _answers(client: ClientTransport, node: str) -> bool:
    try:
        return bool(client.ask(node, "echo", 1, timeout=1).result(2) == [node, 1])
    except Exception:  # not yet: asked again
        return False


def test_a_curve_client_says_hello_again_to_a_member_back_on_its_address(
    tmp_path: Path,
    make_transport: Callable[..., Transport],
    make_client: Callable[..., ClientTransport],
) -> None:
    """A member restarted on the same address knows no session; the client's connection
    comes back and it says hello again (with CURVE too), keeping what it knew of the others."""
    keys = tmp_path / "keys"
    for name in ("m1", "m2", "admin"):
        generate_keys(keys, name)
    m1 = make_transport("m1", RecordingHandler("m1"), security=load_security(keys, "m1"))
    m2 = make_transport("m2", RecordingHandler("m2"), security=load_security(keys, "m2"))
    m2.join([f"m1@{m1.address}"], timeout=10)
    client = make_client("admin", security=load_security(keys, "admin"))
    client.connect(f"m1@{m1.address}", timeout=10)
    assert wait_until(lambda: client.members().get("m2", ("", ""))[1] == "up", 10)
    listen = str(m1.address)
    m1.close()
    again = make_transport(
        "m1", RecordingHandler("m1"), security=load_security(keys, "m1"), listen=listen
    )
    assert wait_until(lambda: again.stats().clients == 1, 20)
    assert wait_until(lambda: _answers(client, "m1"), 20)
    # m1 is back alone (it has not joined again yet): m2 is still there to be asked
    assert "m2" in client.members(), client.members()
    assert _answers(client, "m2")
    client.close(2.0)
    assert wait_until(lambda: again.stats().clients == 0 and m2.stats().clients == 0, 10)


def test_a_client_reconnected_on_a_new_connection_takes_its_old_session_s_place(
    make_transport: Callable[..., Transport], raw_dealer: RawDealer
) -> None:
    """A hello with the name and incarnation of a session held on another connection is
    that client reconnected: one session, not two until the old one goes idle; so even
    at ``max_clients_per_name=1`` it gets in. Another process of that name does not."""
    settings = TransportSettings(max_clients_per_name=1)
    member = make_transport("m", RecordingHandler("m"), settings=settings)
    address = str(member.address)

    def hello(incarnation: int) -> str:
        """Say hello as client ``c`` on a new connection; the kind of the answer."""
        dealer = raw_dealer(address)
        body = {"role": "client", "incarnation": incarnation}
        dealer.send(encode_envelope(Envelope(Kind.HELLO, incarnation, 0, "c", "", body)))
        assert dealer.poll(10_000), "no answer to the hello"
        return decode_envelope(dealer.recv()).kind.value

    assert hello(7) == "members"
    assert hello(7) == "members"  # the same client, reconnected
    assert member.stats().clients == 1
    assert hello(8) == "error"  # another process named c: past the bound
    assert member.stats().frames_dropped["refused_client"] == 1
