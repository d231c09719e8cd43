"""A node keeps serving, with bounded memory, after >= 10,000 hostile frames.

The fuzzer holds an allowlisted key (the worst case: an authenticated insider,
so every frame reaches the decoder). Frames never carry a non-loopback address.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any

import msgpack
from conftest import Peer, RawDealer

from transport import Address, Security, Transport
from transport._envelope import MAX_BATCH, PROTOCOL_VERSION, encode_batch

MakeTransport = Callable[..., Transport]
SpawnPeers = Callable[..., list[Peer]]
SecurityOf = Callable[[str], Security]

FRAMES = 10_500
RSS_GROWTH_LIMIT_KIB = 24 * 1024


def envelope(**changes: Any) -> list[Any]:
    fields: dict[str, Any] = {
        "version": PROTOCOL_VERSION,
        "kind": "tell",
        "message_id": 1,
        "correlation_id": 0,
        "sender": "fuzzer",
        "target": "echo",
        "body": "x",
    }
    fields.update(changes)
    return list(fields.values())


def pack(fields: list[Any]) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def hostile_frame(rng: random.Random, index: int) -> bytes:
    """One hostile frame; the mix covers every malformed-input class of the codec."""
    valid = pack(envelope(message_id=index + 1, body={"n": index, "pad": "y" * rng.randrange(50)}))
    choice = index % 17
    if choice == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if choice == 1:
        return valid[: rng.randrange(0, len(valid))]  # truncated
    if choice == 2:
        header = rng.choice(
            [b"\xdb", b"\xc6", b"\xdd", b"\xdf", b"\xc9"]
        )  # str/bin/array/map/ext 32
        return header + struct.pack(">I", rng.randrange(2**20, 2**32)) + rng.randbytes(20)
    if choice == 3:
        return b"\x91" * rng.randrange(1025, 5000) + b"\xc0"  # nesting deeper than msgpack allows
    if choice == 4:
        return pack(envelope(kind=rng.choice(["exec", "pickle", "", "TELL", "import"])))
    if choice == 5:
        code = rng.choice([0, 4, 9, 42, 127])
        return pack(envelope(body=msgpack.ExtType(code, b"\x90")))
    if choice == 6:
        return pack(envelope(version=rng.choice([0, 2, 99, -1, "1", None])))
    if choice == 7:
        return pack(envelope(sender=rng.choice(["test", "victim", "p1"])))  # spoofed sender
    if choice == 8:
        flipped = bytearray(valid)  # bit flips in a frame that carries no address
        for _ in range(rng.randrange(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    if choice == 9:
        return b"\xdc\xff\xff" + b"\x80" * 65535  # 65,535 empty maps: over max_array_len
    if choice == 10:
        return pack(envelope(body=[[[]] * 1000] * 11))  # over max_containers
    if choice == 11:
        return valid + rng.randbytes(rng.randrange(1, 10))  # trailing bytes
    if choice == 12:
        answer = rng.choice(["reply", "error"])
        return pack(envelope(kind=answer, target="", correlation_id=rng.randrange(1, 2**62)))
    if choice == 14:  # a batch holding one hostile frame of the kinds above
        return encode_batch(
            index + 1, "fuzzer", [hostile_frame(rng, index - 14 + rng.randrange(14))]
        )
    if choice == 15:  # a batch whose body is malformed: dropped whole
        body = rng.choice([[], [b"x"] * (MAX_BATCH + 1), ["str"], b"bin", [[b"x"]], None])
        return pack(envelope(kind="batch", target="", body=body))
    if choice == 16:  # a batch claiming a sender other than the fuzzer's key
        return encode_batch(index + 1, rng.choice(["test", "victim", "p1"]), [valid])
    return valid  # well-formed, but "fuzzer" never said hello: not a member


def ask_stats(test_node: Transport) -> dict[str, Any]:
    stats: dict[str, Any] = test_node.ask(Address("victim", "stats"), None, timeout=5).result(6)
    return stats


def test_a_node_survives_10000_hostile_frames_with_bounded_memory(
    spawn_peers: SpawnPeers,
    make_transport: MakeTransport,
    security_of: SecurityOf,
    raw_dealer: RawDealer,
) -> None:
    [victim] = spawn_peers([("victim", [])])
    test_node = make_transport("test", security=security_of("test"))
    test_node.join([victim.seed], timeout=10)
    fuzzer = security_of("fuzzer")
    victim_key = security_of("victim").public_key
    dealer = raw_dealer(victim.address, (fuzzer.public_key, fuzzer.secret_key, victim_key))

    # Warm up the decoder paths once so the RSS baseline includes code and caches.
    rng = random.Random(1234)
    for index in range(200):
        dealer.send(hostile_frame(rng, index))
    before = ask_stats(test_node)
    deadline = time.monotonic() + 20
    # Every warm-up frame is dropped: wait for the 200 drops (our ask may be answered
    # first: the victim serves each connection in turn, not in arrival order).
    while sum(before["dropped"].values()) < 200 and time.monotonic() < deadline:
        before = ask_stats(test_node)
    rss_before = victim.rss_kib()
    dropped_before = sum(before["dropped"].values())

    sent = 0
    for index in range(FRAMES):
        frame = hostile_frame(rng, index)
        if index % 997 == 0:
            dealer.send_multipart([frame, b"second part"])  # wrong framing
        else:
            dealer.send(frame)
        sent += 1

    after = ask_stats(test_node)
    deadline = time.monotonic() + 40
    while sum(after["dropped"].values()) - dropped_before < sent and time.monotonic() < deadline:
        after = ask_stats(test_node)  # each ask is a round trip: no sleeping
    dropped = {
        reason: count - before["dropped"].get(reason, 0)
        for reason, count in after["dropped"].items()
    }
    assert sum(dropped.values()) == sent, dropped  # every hostile frame dropped, none delivered
    for reason in ("malformed", "sender_mismatch", "not_member", "bad_framing", "unexpected_reply"):
        assert dropped.get(reason, 0) > 0, dropped

    # A frame over ZMQ_MAXMSGSIZE makes libzmq drop that connection; the node serves on.
    oversize = raw_dealer(victim.address, (fuzzer.public_key, fuzzer.secret_key, victim_key))
    oversize.send(b"\x00" * (2 << 20))

    # Still serving, nothing reached an actor, memory bounded.
    assert test_node.ask(Address("victim", "echo"), "still there", timeout=5).result(6) == [
        "victim",
        "still there",
    ]
    assert test_node.ask(Address("victim", "tells"), None, timeout=5).result(6) == []
    growth = victim.rss_kib() - rss_before
    print(f"fuzz: {sent} frames, drops {dropped}, RSS growth {growth} KiB")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB"
    assert after["members"]["test"] == "up"
    assert "fuzzer" not in after["members"]
