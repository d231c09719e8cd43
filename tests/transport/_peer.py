"""A transport node in its own process, for the cross-process tests.

Usage: python _peer.py NAME [--keys DIR | --plaintext] [--seed SEED ...]

Listens on tcp://127.0.0.1:0, joins the seeds, prints ``READY <address>`` on
stdout, then serves until stdin closes (then closes the transport and exits).
Its handler hosts a few test actors:

- ``echo``: answers an ask with ``[node, message]``; records tells.
- ``tells``: answers with the tells ``echo`` received so far.
- ``fail``: raises ``ValueError(message)``.
- ``later``: answers ``message["value"]`` from another thread after ``message["delay"]`` s.
- ``forward``: tells ``message["value"]`` to ``Address.parse(message["to"])``.
- ``await-members``: answers the sorted up-member names once ``message`` nodes are up.
- ``stats``: answers frames in, drops and RSS (KiB) of this process.
- anything else raises ``ActorNotFound``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from transport import (
    ActorNotFound,
    Address,
    MemberEvent,
    Reply,
    Transport,
    load_security,
)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


class PeerHandler:
    def __init__(self) -> None:
        self.transport: Transport | None = None
        self.tells: list[Any] = []
        self.lock = threading.Lock()
        self.member_waiters: list[tuple[int, Reply]] = []

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        assert self.transport is not None
        if target == "echo":
            if reply is None:
                with self.lock:
                    self.tells.append([sender, message])
            else:
                reply.ok([self.transport.name, message])
        elif target == "tells" and reply is not None:
            with self.lock:
                reply.ok(list(self.tells))
        elif target == "fail":
            raise ValueError(f"fail actor refused {message!r}")
        elif target == "later" and reply is not None:
            timer = threading.Timer(message["delay"], reply.ok, args=(message["value"],))
            timer.daemon = True
            timer.start()
        elif target == "forward":
            self.transport.tell(Address.parse(message["to"]), message["value"])
        elif target == "await-members" and reply is not None:
            with self.lock:
                self.member_waiters.append((int(message), reply))
            self.on_member_event(None)
        elif target == "stats" and reply is not None:
            stats = self.transport.stats()
            reply.ok(
                {
                    "frames_in": stats.frames_in,
                    "dropped": dict(stats.frames_dropped),
                    "rss_kib": rss_kib(),
                    "members": {name: m.status for name, m in self.transport.members().items()},
                }
            )
        else:
            raise ActorNotFound(f"no actor {target!r} on this peer")

    def on_member_event(self, _event: MemberEvent | None) -> None:
        assert self.transport is not None
        up = sorted(n for n, m in self.transport.members().items() if m.status == "up")
        with self.lock:
            ready = [(n, r) for n, r in self.member_waiters if len(up) >= n]
            self.member_waiters = [(n, r) for n, r in self.member_waiters if len(up) < n]
        for _, reply in ready:
            reply.ok(up)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--keys")
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--seed", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"[peer {args.name}] %(name)s %(message)s")
    security = load_security(args.keys, args.name) if args.keys else None
    handler = PeerHandler()
    transport = Transport(
        args.name,
        listen="tcp://127.0.0.1:0",
        handler=handler,
        security=security,
        allow_plaintext=args.plaintext,
    )
    handler.transport = transport
    transport.subscribe(handler.on_member_event)
    transport.start()
    if args.seed:
        transport.join(args.seed, timeout=10.0)
    print(f"READY {transport.address}", flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
    transport.close()


if __name__ == "__main__":
    main()
