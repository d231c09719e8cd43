"""Conformance of docs/PROTOCOL.md: a client written from the document alone.

The client below uses raw ``zmq`` and ``msgpack`` only; nothing from ``actors``,
``transport`` or ``runtime``. The real node it talks to is a ``runtime.ActorSystem``
listening on loopback in plaintext mode, with an echo actor spawned as ``echo``.

Per the document: the client listens on a ROUTER of its own (every frame, answers
included, travels from the sender's DEALER to the receiver's ROUTER), connects one
DEALER to the node, says ``hello`` with its address and incarnation, takes the
``members`` welcome, answers the node's ``ping`` probes with ``ack`` while it
waits, asks ``echo`` and gets the
``reply``, asks an unknown path and gets an ``error`` whose ``RemoteError`` ext
(code 2) names ``runtime.ActorNotFound``, then says ``leave`` and gets a ``reply``.
Every wait polls with a deadline; every socket closes with linger 0.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pykka
import pytest
import zmq

VERSION = 4
EXT_ADDRESS, EXT_REMOTE_ERROR, EXT_TUPLE = 1, 2, 3
WAIT = 10.0  # generous: a loaded 2-core machine

pytestmark = pytest.mark.timeout(60)


# -- the client: only zmq + msgpack, written from docs/PROTOCOL.md --------------------


def _ext_hook(code: int, payload: bytes) -> Any:
    fields = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook)
    if code == EXT_TUPLE:
        return tuple(fields)
    if code in (EXT_ADDRESS, EXT_REMOTE_ERROR):
        return (code, fields)
    raise ValueError(f"unknown ext type {code}")


def decode(frame: bytes) -> list[Any]:
    fields = msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=_ext_hook)
    assert isinstance(fields, list) and len(fields) == 7, fields
    assert fields[0] == VERSION, fields
    return fields


class WireClient:
    """A cluster member speaking the documented protocol by hand."""

    def __init__(self, context: zmq.Context[Any], name: str) -> None:
        self.name = name
        self.incarnation = secrets.randbits(62) + 1
        self._ids = secrets.randbits(62) + 1
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind("tcp://127.0.0.1:0")
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.dealer: zmq.Socket[Any] | None = None
        self.peer_incarnation: int | None = None
        self.received: list[list[Any]] = []

    def close(self) -> None:
        if self.dealer is not None:
            self.dealer.close(linger=0)
        self.router.close(linger=0)

    def connect(self, endpoint: str) -> None:
        self.dealer = self.router.context.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(endpoint)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def send(self, kind: str, target: str, body: Any, correlation_id: int = 0) -> int:
        assert self.dealer is not None
        message_id = self.next_id()
        frame = [VERSION, kind, message_id, correlation_id, self.name, target, body]
        self.dealer.send(msgpack.packb(frame, use_bin_type=True), zmq.NOBLOCK)
        return message_id

    def _answer_probe(self, envelope: list[Any]) -> None:
        """A member answers every ``ping`` with an ``ack`` (no updates of its own)."""
        if envelope[1] == "ping" and self.peer_incarnation is not None:
            self.send("ack", "", [self.incarnation, []], correlation_id=envelope[2])

    def _receive(self, timeout_ms: int) -> Iterator[list[Any]]:
        if not self.router.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            assert len(parts) == 2, parts  # [routing id of the sender's DEALER, payload]
            envelope = decode(parts[1])
            if envelope[1] == "batch":  # items: encoded envelopes of the same sender
                for item in envelope[6]:
                    inner = decode(item)
                    assert inner[4] == envelope[4] and inner[1] != "batch"
                    yield inner
            else:
                yield envelope

    def wait_for(self, match: Callable[[list[Any]], bool], what: str) -> list[Any]:
        """Receive (answering probes meanwhile) until an envelope matches; bounded by WAIT."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for envelope in self._receive(50):
                self.received.append(envelope)
                self._answer_probe(envelope)
                if match(envelope):
                    return envelope
        raise AssertionError(f"no {what} within {WAIT}s; got {[e[:5] for e in self.received]}")

    def answer_to(self, kind: str, message_id: int) -> list[Any]:
        return self.wait_for(lambda e: e[1] in (kind, "error") and e[3] == message_id, kind)


# -- the node under test ----------------------------------------------------------------


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return ["echoed", message]


@pytest.fixture
def node() -> Iterator[Any]:
    from runtime import ActorSystem  # only to start the real node

    system = ActorSystem("served", listen="tcp://127.0.0.1:0", plaintext=True)
    try:
        system.spawn(Echo, name="echo")
        yield system
    finally:
        system.shutdown()


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.term()


def test_a_client_written_from_the_document_joins_asks_and_leaves(
    node: Any, context: zmq.Context[Any]
) -> None:
    client = WireClient(context, "doc-client")
    try:
        client.connect(node.address)
        # join: hello, retried every 0.5 s until the members welcome answers one of them
        hellos: set[int] = set()
        welcome: list[Any] | None = None
        deadline = time.monotonic() + WAIT
        while welcome is None and time.monotonic() < deadline:
            hellos.add(
                client.send(
                    "hello", "", {"address": client.address, "incarnation": client.incarnation}
                )
            )
            end = time.monotonic() + 0.5
            while welcome is None and time.monotonic() < end:
                for envelope in client._receive(50):
                    if envelope[1] in ("members", "error") and envelope[3] in hellos:
                        welcome = envelope
        assert welcome is not None, "no answer to hello"
        assert welcome[1] == "members", welcome
        assert welcome[4] == "served" and welcome[5] == ""
        entries = {entry[0]: entry for entry in welcome[6]}
        assert entries["served"][1:3] == [node.address, "up"]
        assert entries["doc-client"][1:] == [client.address, "up", client.incarnation]
        client.peer_incarnation = entries["served"][3]

        # the node probes its new member: ping [its incarnation, updates], answered by ack
        probe = client.wait_for(lambda e: e[1] == "ping", "ping")
        assert probe[6][0] == client.peer_incarnation and probe[5] == ""
        assert isinstance(probe[6][1], list)

        # ask an actor: reply correlated to the ask's message id
        pair = msgpack.ExtType(EXT_TUPLE, msgpack.packb(["a", b"b"], use_bin_type=True))
        ask = client.send("ask", "echo", {"n": 1, "t": pair})
        reply = client.answer_to("reply", ask)
        assert reply[1] == "reply", reply
        assert reply[4] == "served" and reply[5] == ""
        assert reply[6] == ["echoed", {"n": 1, "t": ("a", b"b")}]

        # ask an unknown path: error whose body is a RemoteError ext naming ActorNotFound
        missing = client.send("ask", "no-such-actor", "hi")
        error = client.answer_to("error", missing)
        assert error[1] == "error", error
        code, (type_name, message, _traceback, origin) = error[6]
        assert code == EXT_REMOTE_ERROR
        assert type_name == "runtime.ActorNotFound"
        assert "no-such-actor" in message and origin == "served"

        # the $system ping
        ping = client.send("ask", "$system", {"op": "ping"})
        assert client.answer_to("reply", ping)[6] == "pong"

        # leave: body nil, acknowledged by a reply with body nil
        leave = client.send("leave", "", None)
        ack = client.answer_to("reply", leave)
        assert ack[1] == "reply" and ack[6] is None
        client.peer_incarnation = None  # a member that left answers no more probes
        deadline = time.monotonic() + WAIT
        while node.members().get("doc-client") != "left":
            assert time.monotonic() < deadline, node.members()
            time.sleep(0.02)
    finally:
        client.close()
