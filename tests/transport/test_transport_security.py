"""CURVE + ZAP: keys on disk, the allowlist, sender binding, and plaintext refused off loopback."""

from __future__ import annotations

import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LogWatcher, RawDealer, RecordingHandler
from zmq.auth.thread import ThreadAuthenticator

from transport import (
    Address,
    Envelope,
    JoinRefused,
    Security,
    Transport,
    TransportSettings,
    generate_keys,
    load_security,
)
from transport._envelope import Kind, encode_envelope
from transport._security import is_loopback_endpoint

MakeTransport = Callable[..., Transport]
SecurityOf = Callable[[str], Security]


# -- keys on disk ----------------------------------------------------------------------


def test_generated_secret_keys_are_private_and_public_keys_readable(tmp_path: Path) -> None:
    public, secret = generate_keys(tmp_path / "keys", "node-1")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    security = load_security(tmp_path / "keys", "node-1")
    assert security.authorized == {"node-1": security.public_key}
    assert "secret_key" not in repr(security)


def test_existing_keys_are_never_overwritten(tmp_path: Path) -> None:
    generate_keys(tmp_path, "node-1")
    with pytest.raises(FileExistsError):
        generate_keys(tmp_path, "node-1")


def test_a_secret_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    _, secret = generate_keys(tmp_path, "node-1")
    secret.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_security(tmp_path, "node-1")


def test_the_allowlist_is_every_public_key_file_in_the_directory(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        generate_keys(tmp_path, name)
    security = load_security(tmp_path, "a")
    assert sorted(security.authorized) == ["a", "b", "c"]
    assert security.node_of(security.authorized["b"]) == "b"
    assert security.public_key_of("zed") is None


# -- plaintext only on loopback, only when asked for --------------------------------------


@pytest.mark.parametrize(
    "listen", ["tcp://0.0.0.0:0", "tcp://*:0", "tcp://[::]:0", "tcp://10.1.2.3:0", "tcp://eth0:0"]
)
def test_plaintext_on_a_non_loopback_address_is_refused_before_binding(listen: str) -> None:
    # Refused in the constructor: no socket, no thread, nothing ever listens.
    with pytest.raises(ValueError, match="not a loopback address"):
        Transport("n", listen=listen, handler=RecordingHandler(), allow_plaintext=True)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("actorflow-")]


def test_plaintext_on_loopback_needs_an_explicit_opt_in() -> None:
    with pytest.raises(ValueError, match="allow_plaintext"):
        Transport("n", listen="tcp://127.0.0.1:0", handler=RecordingHandler())


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:1", True),
        ("tcp://127.9.9.9:1", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:1", True),
        ("tcp://0.0.0.0:1", False),
        ("tcp://example.com:1", False),
    ],
)
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback_endpoint(endpoint) is loopback


def test_a_plaintext_node_refuses_a_non_loopback_seed_without_sending_anything(
    make_transport: MakeTransport,
) -> None:
    node = make_transport("n")
    with pytest.raises(ValueError, match="not a loopback address"):
        node.join(["tcp://10.1.2.3:5555"], timeout=1)
    assert node.stats().frames_out == 0


def test_with_curve_a_seed_must_name_its_node(
    make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    node = make_transport("test", security=security_of("test"))
    with pytest.raises(ValueError, match="name@tcp"):
        node.join(["tcp://127.0.0.1:5555"], timeout=1)


def test_start_fails_closed_when_the_authenticator_cannot_start(
    monkeypatch: pytest.MonkeyPatch, security_of: SecurityOf
) -> None:
    def broken_start(self: ThreadAuthenticator) -> None:
        raise RuntimeError("Authenticator thread failed to start")

    monkeypatch.setattr(ThreadAuthenticator, "start", broken_start)
    node = Transport(
        "test", listen="tcp://127.0.0.1:0", handler=RecordingHandler(), security=security_of("test")
    )
    with pytest.raises(RuntimeError, match="ZAP authenticator failed to start"):
        node.start()
    assert node.address is None  # never bound
    assert not [t.name for t in threading.enumerate() if t.name.startswith("actorflow-")]


# -- CURVE in action --------------------------------------------------------------------


def test_secured_nodes_join_and_talk(
    make_transport: MakeTransport, security_of: SecurityOf
) -> None:
    victim = make_transport("victim", security=security_of("victim"))
    insider = make_transport("insider", security=security_of("insider"))
    insider.join([f"victim@{victim.address}"], timeout=5)
    assert insider.ask(Address("victim", "echo"), "hi", timeout=2).result(3) == ["victim", "hi"]


@pytest.fixture
def outsider_keys(tmp_path: Path, keys_dir: Path) -> Path:
    """A key pair that is NOT in the cluster's directory; it knows the victim's public key."""
    generate_keys(tmp_path, "intruder")
    shutil.copy(keys_dir / "victim.key", tmp_path / "victim.key")
    return tmp_path


def test_a_node_whose_key_is_not_allowlisted_cannot_join(
    make_transport: MakeTransport,
    security_of: SecurityOf,
    outsider_keys: Path,
    log_watcher: LogWatcher,
) -> None:
    handler = RecordingHandler("victim")
    victim = make_transport("victim", handler, security=security_of("victim"))
    intruder = make_transport("intruder", security=load_security(outsider_keys, "intruder"))
    with pytest.raises(JoinRefused, match=f"seed victim@{victim.address}: the seed refused"):
        intruder.join([f"victim@{victim.address}"], timeout=30)  # refused long before
    assert log_watcher.count("not on the allowlist") >= 1
    assert "intruder" not in victim.members()
    assert handler.deliveries == []


def hostile_frames(sender: str) -> list[bytes]:
    hello = Envelope(
        Kind.HELLO,
        11,
        0,
        sender,
        "",
        {"role": "member", "address": "tcp://127.0.0.1:9", "incarnation": 1},
    )
    return [
        encode_envelope(envelope)
        for envelope in (
            hello,
            Envelope(Kind.TELL, 12, 0, sender, "sink", "let me in"),
            Envelope(Kind.ASK, 13, 0, sender, "echo", "let me in"),
        )
    ]


@pytest.mark.parametrize("attack", ["key not allowlisted", "no CURVE", "wrong server key"])
def test_refused_peers_never_reach_the_handler(
    attack: str,
    make_transport: MakeTransport,
    security_of: SecurityOf,
    outsider_keys: Path,
    raw_dealer: RawDealer,
    log_watcher: LogWatcher,
) -> None:
    handler = RecordingHandler("victim")
    victim = make_transport("victim", handler, security=security_of("victim"))
    assert victim.address is not None
    victim_key = security_of("victim").public_key
    insider = security_of("insider")
    intruder = load_security(outsider_keys, "intruder")
    curve = {
        "key not allowlisted": (intruder.public_key, intruder.secret_key, victim_key),
        "no CURVE": None,
        # A real, allowlisted client key, but it expects another server's key.
        "wrong server key": (insider.public_key, insider.secret_key, insider.public_key),
    }[attack]
    attacker = raw_dealer(victim.address, curve)
    for frame in hostile_frames("intruder" if attack == "key not allowlisted" else "insider"):
        attacker.send(frame)
    assert log_watcher.wait_for("refused a connection", timeout=5)
    # Control: a legitimate node gets through after the attack; only its message arrives.
    legit = make_transport("insider", security=insider)
    legit.join([f"victim@{victim.address}"], timeout=5)
    assert legit.ask(Address("victim", "echo"), "legit", timeout=2).result(3) == ["victim", "legit"]
    assert handler.deliveries == [("insider", "echo", "legit")]
    assert victim.stats().frames_dropped.get("handshake_failed", 0) >= 1


def test_an_authenticated_node_cannot_claim_another_sender(
    make_transport: MakeTransport,
    security_of: SecurityOf,
    raw_dealer: RawDealer,
    log_watcher: LogWatcher,
) -> None:
    handler = RecordingHandler("victim")
    victim = make_transport("victim", handler, security=security_of("victim"))
    test_node = make_transport("test", security=security_of("test"))
    test_node.join([f"victim@{victim.address}"], timeout=5)
    assert victim.address is not None
    insider = security_of("insider")
    dealer = raw_dealer(
        victim.address, (insider.public_key, insider.secret_key, security_of("victim").public_key)
    )
    # "insider" holds a valid key but claims to be "test", a member: dropped per message.
    dealer.send(encode_envelope(Envelope(Kind.TELL, 21, 0, "test", "sink", "spoofed")))
    assert log_watcher.wait_for("claiming sender 'test'", timeout=5)
    assert handler.deliveries == []
    assert victim.stats().frames_dropped["sender_mismatch"] == 1


def test_secured_settings_still_validate(security_of: SecurityOf) -> None:
    with pytest.raises(ValueError, match="probe_timeout"):
        TransportSettings(probe_interval=0.1, probe_timeout=0.2)
    with pytest.raises(ValueError, match="suspicion_timeout"):
        TransportSettings(suspicion_timeout=0.3)
    with pytest.raises(ValueError, match="indirect_probes must be an int"):
        TransportSettings(indirect_probes=2.5)
    with pytest.raises(ValueError, match="belong to node"):
        Transport("other", listen=None, handler=RecordingHandler(), security=security_of("test"))


def test_a_key_removed_from_the_directory_is_refused_on_its_next_connection(
    make_transport: MakeTransport, tmp_path: Path, log_watcher: LogWatcher
) -> None:
    keys = tmp_path / "keys"
    for name in ("keeper", "visitor"):
        generate_keys(keys, name)
    polled = TransportSettings(keys_poll_interval=0.2)
    keeper = make_transport("keeper", security=load_security(keys, "keeper"), settings=polled)
    seed = f"keeper@{keeper.address}"
    first = make_transport("visitor", security=load_security(keys, "visitor"))
    first.join([seed], timeout=10)
    first.close()

    (keys / "visitor.key").unlink()  # no signal, no call: the poll notices
    assert log_watcher.wait_for("removed ['visitor']", timeout=10)
    again = make_transport("visitor", security=load_security(keys, "visitor"))
    with pytest.raises(JoinRefused, match="refused this node's CURVE key"):
        again.join([seed], timeout=30)
