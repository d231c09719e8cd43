"""A hostile (or just unwelcome) peer, in its own process: joins a node, then floods it.

Usage: python -m tests.hostile._flooder ADDRESS --kinds K1,K2 [--seconds S] [--name N]

Speaks the wire protocol by hand (raw ``zmq`` + ``msgpack``, as in
docs/PROTOCOL.md): says hello, acks the node's probes so it stays a member
(its valid frames count as hearing from it too), then sends
each kind of traffic for ``--seconds`` as fast as its DEALER takes it, reading
the answers meanwhile (a kind's time starts once its first frame is taken:
the node reads the previous kind's backlog first). Prints ``JOINED``, then
``FLOODING <kind>`` as each kind starts, then one ``SUMMARY <json>`` line:
frames sent per kind and the answers it got by type name
(``runtime.Overloaded``, ``runtime.ActorNotFound``...).

Kinds (``KINDS``): ``garbage`` (not msgpack), ``deep`` (a body of arrays nested
past msgpack's limit), ``deep_ext`` (an ext payload nesting arrays 1,000 deep),
``unknown_kind``, ``bad_version``, ``tell_unknown`` / ``ask_unknown`` (to an actor
that does not exist, 200 per batch frame), ``bad_op`` (asks ``$system`` an unknown
op), ``spawn_unregistered`` (asks ``$system`` to spawn an unregistered class),
``forged_sender`` (envelopes claiming another node's name). Not in ``KINDS``:
``replayed_batch`` (one batch frame of tells to an unknown actor, sent again and
again: made once, so the flooder outpaces any node, and each costs the node a
look at every item).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

VERSION = 5
EXT_ADDRESS, EXT_REMOTE_ERROR = 1, 2
BATCH_ITEMS = 200


def _ext_hook(code: int, payload: bytes) -> Any:
    fields = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook)
    return (code, fields)


class Flooder:
    def __init__(self, context: zmq.Context[Any], name: str, address: str) -> None:
        self.name = name
        self.incarnation = secrets.randbits(62) + 1
        self._ids = secrets.randbits(62) + 1
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.RCVHWM, 100_000)
        self.router.bind("tcp://127.0.0.1:0")
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.dealer = context.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(address)
        self.answers: Counter[str] = Counter()
        self.node: str | None = None
        self.node_incarnation: int | None = None

    def close(self) -> None:
        self.dealer.close(linger=0)
        self.router.close(linger=0)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def envelope(self, kind: str, target: str, body: Any, sender: str | None = None) -> bytes:
        fields = [VERSION, kind, self.next_id(), 0, sender or self.name, target, body]
        return msgpack.packb(fields, use_bin_type=True)

    def send(self, frame: bytes) -> bool:
        """Send one frame if the DEALER takes it now; reads answers and acks probes meanwhile."""
        self.service()
        try:
            self.dealer.send(frame, zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.router.poll(5, zmq.POLLIN)
            return False

    def service(self) -> None:
        """Read what the node sent: answers are counted, its probes acked at once."""
        for _ in range(10_000):
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._count(parts[-1])

    def _count(self, payload: bytes) -> None:
        fields = msgpack.unpackb(payload, raw=False, ext_hook=_ext_hook)
        if fields[1] == "batch":
            for item in fields[6]:
                self._count(item)
        elif fields[1] == "error":
            _code, error = fields[6]
            self.answers[error[0]] += 1
        elif fields[1] == "ping":  # SWIM: ack, or the node suspects us and declares us down
            ack = [VERSION, "ack", self.next_id(), fields[2], self.name, "", [self.incarnation, []]]
            with contextlib.suppress(zmq.Again):  # behind a full DEALER: the flood itself
                self.dealer.send(msgpack.packb(ack), zmq.NOBLOCK)  # counts as hearing from us
        elif fields[1] == "members" and self.node is None:
            self.node = fields[4]
            own = next(entry for entry in fields[6] if entry[0] == fields[4])
            self.node_incarnation = own[3]
        else:
            self.answers[fields[1]] += 1

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.node is None:
            if time.monotonic() > deadline:
                raise SystemExit("flooder: no welcome")
            hello = {"role": "member", "address": self.address, "incarnation": self.incarnation}
            self.dealer.send(self.envelope("hello", "", hello))
            end = time.monotonic() + 0.5
            while self.node is None and time.monotonic() < end:
                self.router.poll(50, zmq.POLLIN)
                self.service()

    def batch(self, make: Callable[[], bytes]) -> bytes:
        """One batch frame of envelopes (a batch frame may be at most 10,000 bytes)."""
        items: list[bytes] = []
        size = 0
        while len(items) < BATCH_ITEMS:
            item = make()
            if size + len(item) + 5 > 9000:
                break
            items.append(item)
            size += len(item) + 5
        return self.envelope("batch", "", items)


def deep_body(depth: int) -> bytes:
    """An envelope whose body is arrays nested ``depth`` deep (raw bytes: msgpack
    itself refuses to pack that)."""
    return b"\x91" * depth + b"\xc0"


def frames_for(flooder: Flooder, kind: str) -> Callable[[], bytes]:
    """What one frame of ``kind`` is (made fresh each time: new message ids)."""
    head = [VERSION, "tell"]
    if kind == "garbage":
        return lambda: os.urandom(64)
    if kind == "deep":

        def deep() -> bytes:
            prefix = msgpack.packb([*head, flooder.next_id(), 0, flooder.name, "echo"])
            return b"\x97" + prefix[1:] + deep_body(1100)

        return deep
    if kind == "deep_ext":

        def deep_ext() -> bytes:
            prefix = msgpack.packb([*head, flooder.next_id(), 0, flooder.name, "echo"])
            payload = b"\x92" + deep_body(1000) + b"\xc0"
            ext = msgpack.packb(msgpack.ExtType(EXT_ADDRESS, payload))
            return b"\x97" + prefix[1:] + ext

        return deep_ext
    if kind == "unknown_kind":
        return lambda: flooder.envelope("bogus", "echo", "x")
    if kind == "bad_version":
        return lambda: msgpack.packb([99, "tell", flooder.next_id(), 0, flooder.name, "echo", 1])
    if kind == "tell_unknown":
        return lambda: flooder.batch(lambda: flooder.envelope("tell", "nobody", {"n": 1}))
    if kind == "ask_unknown":
        return lambda: flooder.batch(lambda: flooder.envelope("ask", "nobody", {"n": 1}))
    if kind == "bad_op":
        return lambda: flooder.batch(lambda: flooder.envelope("ask", "$system", {"op": "nope"}))
    if kind == "spawn_unregistered":
        spawn = {"op": "spawn", "class": "no.such:Class", "args": [], "name": "x"}
        return lambda: flooder.batch(lambda: flooder.envelope("ask", "$system", spawn))
    if kind == "replayed_batch":
        replayed = flooder.batch(lambda: flooder.envelope("tell", "nobody", {"n": 1}))
        return lambda: replayed
    if kind == "forged_sender":
        return lambda: flooder.envelope("tell", "echo", 1, sender="someone-else")
    raise SystemExit(f"flooder: unknown kind {kind!r}")


KINDS = (  # the asks before the tells: asks queue behind their sender's own tells
    "garbage",
    "deep",
    "deep_ext",
    "unknown_kind",
    "bad_version",
    "forged_sender",
    "ask_unknown",
    "bad_op",
    "spawn_unregistered",
    "tell_unknown",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--name", default="flooder")
    args = parser.parse_args()
    context: zmq.Context[Any] = zmq.Context()
    flooder = Flooder(context, args.name, args.address)
    sent: Counter[str] = Counter()
    try:
        flooder.join(timeout=20.0)
        print("JOINED", flush=True)
        for kind in args.kinds.split(","):
            make = frames_for(flooder, kind)
            print(f"FLOODING {kind}", flush=True)
            frame = make()
            # The kind's time starts with its first frame: the node may still be
            # reading the previous kind's backlog (its DEALER is full until then).
            deadline = time.monotonic() + 60.0
            while not flooder.send(frame) and time.monotonic() < deadline:
                pass
            sent[kind] += 1
            frame = make()
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                if flooder.send(frame):
                    sent[kind] += 1
                    frame = make()
        # the answers still on their way
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            flooder.router.poll(50, zmq.POLLIN)
            flooder.service()
        summary = {"sent": dict(sent), "answers": dict(flooder.answers)}
        print("SUMMARY " + json.dumps(summary), flush=True)
    finally:
        flooder.close()
        context.term()
    sys.exit(0)


if __name__ == "__main__":
    main()
