"""Conformance of docs/PROTOCOL.md: a client written from the document alone.

The client below uses raw ``zmq`` and ``msgpack`` only; nothing from ``actors``,
``transport`` or ``runtime``. The real node it talks to is a ``runtime.ActorSystem``
listening on loopback in plaintext mode, with an echo actor spawned as ``echo``
and a workflow registered as ``double``.

Per the document: the client connects one DEALER to the node and listens on
nothing (the client role: answers come back over its own connection), says
``hello`` with its role and incarnation, takes the ``members`` welcome (which
does not list it: a client is not a member), asks ``echo`` and gets the
``reply``, asks an unknown path and gets an ``error`` whose ``RemoteError`` ext
(code 2) names ``runtime.ActorNotFound``, submits a run of ``double`` to
``$system`` and reads its result, then says ``leave`` and gets a ``reply``.

A member written the same way listens on a ROUTER, says ``hello`` with the
member role and its address, answers the node's ``ping`` probes with ``ack``,
stops answering until a ``ping`` carries its own ``suspect`` entry first,
refutes it (``alive``, epoch + 1) and stays ``up``, then falls silent and is
declared ``down``. Every wait polls with a deadline; every socket closes with
linger 0.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pykka
import pytest
import zmq
from conftest import EventLog

VERSION = 5
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
    """A client (not a member) speaking the documented protocol by hand."""

    def __init__(self, context: zmq.Context[Any], name: str) -> None:
        self.name = name
        self.incarnation = secrets.randbits(62) + 1
        self._ids = secrets.randbits(62) + 1
        self.context = context
        self.dealer: zmq.Socket[Any] | None = None
        self.received: list[list[Any]] = []

    def close(self) -> None:
        if self.dealer is not None:
            self.dealer.close(linger=0)

    def connect(self, endpoint: str) -> None:
        self.dealer = self.context.socket(zmq.DEALER)
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

    def _receive(self, timeout_ms: int) -> Iterator[list[Any]]:
        assert self.dealer is not None
        if not self.dealer.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                parts = self.dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            assert len(parts) == 1, parts  # the member's ROUTER sent [routing id, payload]
            envelope = decode(parts[0])
            if envelope[1] == "batch":  # items: encoded envelopes of the same sender
                for item in envelope[6]:
                    inner = decode(item)
                    assert inner[4] == envelope[4] and inner[1] != "batch"
                    yield inner
            else:
                yield envelope

    def wait_for(self, match: Callable[[list[Any]], bool], what: str) -> list[Any]:
        """Receive until an envelope matches; bounded by WAIT."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for envelope in self._receive(50):
                self.received.append(envelope)
                if match(envelope):
                    return envelope
        raise AssertionError(f"no {what} within {WAIT}s; got {[e[:5] for e in self.received]}")

    def answer_to(self, kind: str, message_id: int) -> list[Any]:
        return self.wait_for(lambda e: e[1] in (kind, "error") and e[3] == message_id, kind)

    def ask(self, target: str, body: Any) -> Any:
        """Ask and return the reply's body (failing on an error)."""
        answer = self.answer_to("reply", self.send("ask", target, body))
        assert answer[1] == "reply", answer
        return answer[6]


# -- the node under test ----------------------------------------------------------------


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return ["echoed", message]


def double(ctx: dict[str, Any]) -> int:
    return int(ctx["n"]) * 2


@pytest.fixture
def node() -> Iterator[Any]:
    from runtime import ActorSystem, task  # only to start the real node

    system = ActorSystem("served", listen="tcp://127.0.0.1:0", plaintext=True)
    try:
        system.spawn(Echo, name="echo")
        system.register_workflow(task(double).named("double"))
        yield system
    finally:
        system.shutdown()


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.term()


def test_a_client_written_from_the_document_asks_submits_and_leaves(
    node: Any, context: zmq.Context[Any]
) -> None:
    client = WireClient(context, "doc-client")
    try:
        client.connect(node.address)
        # hello with the client role: no address, answered over this connection
        hello = client.send("hello", "", {"role": "client", "incarnation": client.incarnation})
        welcome = client.answer_to("members", hello)
        assert welcome[1] == "members", welcome
        assert welcome[4] == "served" and welcome[5] == ""
        entries = {entry[0]: entry for entry in welcome[6]}
        assert entries["served"][1:3] == [node.address, "up"]
        assert "doc-client" not in entries  # a client is not a member
        assert set(node.members()) == {"served"}

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

        # the $system ping, and a heartbeat (body: the hello's incarnation) keeps the session
        assert client.ask("$system", {"op": "ping"}) == "pong"
        client.send("heartbeat", "", client.incarnation)

        # submit a run of the registered workflow; ctx is msgpack in a bin
        ctx = msgpack.packb({"n": 21}, use_bin_type=True)
        started = client.ask("$system", {"op": "submit", "workflow": "double", "ctx": ctx})
        run_id = started["run"]
        deadline = time.monotonic() + WAIT
        while True:
            info = client.ask("$system", {"op": "run", "run": run_id})
            assert info["run"] == run_id and info["node"] == "served"
            if info["done"]:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.05)  # polling the node's answer, bounded by the deadline
        assert info["state"] == "Completed" and info["error"] is None
        assert msgpack.unpackb(info["output"], raw=False) == 42

        # an unknown workflow name: an error naming the known ones
        unknown = client.send("ask", "$system", {"op": "submit", "workflow": "nope", "ctx": ctx})
        refusal = client.answer_to("error", unknown)
        code, (type_name, message, _traceback, _origin) = refusal[6]
        assert type_name == "runtime.UnknownWorkflow" and "known: double" in message

        # leave: body nil, acknowledged by a reply with body nil; the session ends
        leave = client.send("leave", "", None)
        ack = client.answer_to("reply", leave)
        assert ack[1] == "reply" and ack[6] is None
        assert set(node.members()) == {"served"}
    finally:
        client.close()


class WireMember(WireClient):
    """A member speaking the documented probes by hand: it listens on a ROUTER of its own
    (members' frames, answers included, arrive there) and answers ``ping`` with ``ack``."""

    def __init__(self, context: zmq.Context[Any], name: str) -> None:
        super().__init__(context, name)
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind("tcp://127.0.0.1:0")
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.epoch = 0
        self.answering = True
        self.refutations = 0

    def close(self) -> None:
        super().close()
        self.router.close(linger=0)

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
            items = [decode(i) for i in envelope[6]] if envelope[1] == "batch" else [envelope]
            for item in items:
                self._probe(item)
                yield item

    def _probe(self, envelope: list[Any]) -> None:
        """Ack a ping; refute a suspicion of ourselves found in its updates."""
        if envelope[1] != "ping" or not self.answering:
            return
        updates: list[list[Any]] = []
        for name, _address, state, incarnation, epoch, _by in envelope[6][1]:
            mine = name == self.name and incarnation == self.incarnation
            if mine and state in ("suspect", "dead") and epoch >= self.epoch:
                self.epoch = epoch + 1
                self.refutations += 1
                entry = [self.name, self.address, "alive", self.incarnation, self.epoch, self.name]
                updates.append(entry)
        self.send("ack", "", [self.incarnation, updates], correlation_id=envelope[2])


def test_a_member_written_from_the_document_answers_probes_refutes_and_is_declared_down(
    node: Any, context: zmq.Context[Any]
) -> None:
    member = WireMember(context, "doc-member")
    try:
        member.connect(node.address)
        body = {"role": "member", "address": member.address, "incarnation": member.incarnation}
        welcome = member.answer_to("members", member.send("hello", "", body))
        entries = {entry[0]: entry for entry in welcome[6]}
        assert entries["doc-member"][1:] == [member.address, "up", member.incarnation]
        served = entries["served"][3]

        # the node probes its member: ping [its incarnation, updates of 6 fields]
        ping = member.wait_for(lambda e: e[1] == "ping", "ping")
        assert ping[4] == "served" and ping[5] == "" and ping[6][0] == served
        assert all(len(update) == 6 for update in ping[6][1])

        # stop answering: the node suspects us and says so first on its next ping
        member.answering = False
        suspected = member.wait_for(
            lambda e: e[1] == "ping" and e[6][1][:1] != [] and e[6][1][0][2] == "suspect",
            "a ping carrying our suspicion",
        )
        assert suspected[6][1][0][0] == "doc-member" and suspected[6][1][0][4] == 0
        # answer again, with the refutation (epoch + 1): we stay up
        member.answering = True
        member._probe(suspected)
        assert member.refutations == 1
        until = time.monotonic() + 3.0  # three times the shortest suspicion
        while time.monotonic() < until:
            for _ in member._receive(50):
                pass
        assert node.members()["doc-member"] == "up"

        # silent for good (no acks, no leave): declared down
        member.answering = False
        deadline = time.monotonic() + WAIT
        while node.members()["doc-member"] != "down":
            assert time.monotonic() < deadline, node.members()
            for _ in member._receive(50):
                pass
    finally:
        member.close()


def test_a_leaving_node_does_not_probe_the_members_that_let_it_go_into_down(
    make_transport: Callable[..., Any], context: zmq.Context[Any]
) -> None:
    """``leave`` waits for every member's answer; one that never answers it (here a member
    written from the document: it acks pings, ignores ``leave``) keeps it waiting. The
    members that did answer marked the leaver ``left`` and drop its probes meanwhile: the
    leaver must not take their silence for death (``down`` events, asks failed)."""
    from transport import TransportSettings  # only to start the real nodes

    fast = TransportSettings(
        probe_interval=0.15,
        probe_timeout=0.06,
        suspicion_timeout=0.6,
        check_interval=0.05,
        pause_tolerance=0.4,
    )  # an unconfirmed suspicion lasts 1.8 s: well inside the 4 s leave below
    leaver = make_transport("leaver", settings=fast)
    peer = make_transport("peer", settings=fast)
    peer.join([leaver.address], timeout=10)
    member = WireMember(context, "mute")
    pumping = threading.Event()

    def pump() -> None:  # ack pings until the test ends (the sockets stay on this thread)
        while not pumping.is_set():
            for _ in member._receive(50):
                pass

    pumper: threading.Thread | None = None
    try:
        member.connect(leaver.address)
        body = {"role": "member", "address": member.address, "incarnation": member.incarnation}
        member.answer_to("members", member.send("hello", "", body))
        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        events = EventLog()
        leaver.subscribe(events)
        leaver.leave(timeout=4.0)  # "mute" never answers: the whole 4 s
        assert peer.members()["leaver"].status == "left"
        assert events.wait_for("peer", "down", timeout=0) is None, events.events
    finally:
        pumping.set()
        if pumper is not None:
            pumper.join(5)
        member.close()
