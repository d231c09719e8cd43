"""A rate limiter service as a cluster singleton, with clients in other processes.

Run a daemon (a candidate to host the limiter) in two terminals, then a client::

    python -m examples.rate_limiter daemon node-1 --listen tcp://127.0.0.1:7001
    python -m examples.rate_limiter daemon node-2 --join tcp://127.0.0.1:7001
    python -m examples.rate_limiter client --join tcp://127.0.0.1:7001 --requests 20

One daemon runs the ``RateLimiter`` (a token bucket per client id, saved as a
snapshot after every request); kill it with kill -9 and the other starts it
from that snapshot within the failure detector's bound, so no client gets a
fresh bucket. Every process opens the same SQLite file (``--store``): with
SQLite, all of them must be on one host (see README "Actors across hosts").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import pykka

from runtime import ActorSystem, SQLiteStore, serve

NAME = "rate-limiter"
DEFAULT_STORE = ".actorflow/rate-limiter.db"


class RateLimiter(pykka.ThreadingActor):
    """``{"allow": client}`` -> True while the client has tokens (``capacity`` per ``per`` s)."""

    def __init__(self, capacity: int = 5, per: float = 60.0) -> None:
        super().__init__()
        self.capacity, self.per = capacity, per
        self.buckets: dict[str, list[float]] = {}  # client -> [tokens, last refill time]

    def snapshot(self) -> Any:
        return {"buckets": self.buckets}

    def restore(self, state: Any) -> None:
        self.buckets = {k: list(v) for k, v in state["buckets"].items()}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, dict) and isinstance(message.get("allow"), str):
            return self._allow(message["allow"])
        if message == "where":
            return os.getpid()
        raise ValueError(f"rate limiter: unknown message {message!r}")

    def _allow(self, client: str) -> bool:
        now = time.time()
        tokens, last = self.buckets.get(client, [float(self.capacity), now])
        tokens = min(self.capacity, tokens + (now - last) * self.capacity / self.per)
        allowed = tokens >= 1
        self.buckets[client] = [tokens - 1 if allowed else tokens, now]
        return allowed


def _system(name: str, args: argparse.Namespace) -> ActorSystem:
    return ActorSystem(
        name,
        listen=args.listen,
        join=[args.join] if args.join else [],
        plaintext=True,
        store=SQLiteStore(args.store),
    )


def daemon(args: argparse.Namespace) -> int:
    system = _system(args.name, args)
    system.singleton(NAME, RateLimiter, args.capacity, args.per, lease=args.lease)
    print(f"daemon {args.name} up at {system.address} pid {os.getpid()}", flush=True)
    serve(system, drain_timeout=1.0)
    return 0


def client(args: argparse.Namespace) -> int:
    with _system(f"client-{os.getpid()}", args) as system:
        limiter = system.singleton_ref(NAME)
        for i in range(args.requests):
            allowed = limiter.ask({"allow": args.client}, timeout=30)
            print(f"request {i + 1}: {'allowed' if allowed else 'refused'}", flush=True)
        print(f"served by pid {limiter.ask('where', timeout=30)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["daemon", "client"])
    parser.add_argument("name", nargs="?", default="node")
    parser.add_argument("--listen", default="tcp://127.0.0.1:0")
    parser.add_argument("--join", default=None)
    parser.add_argument("--store", default=DEFAULT_STORE)
    parser.add_argument("--capacity", type=int, default=5)
    parser.add_argument("--per", type=float, default=60.0)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--client", default="alice")
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args(argv)
    return daemon(args) if args.role == "daemon" else client(args)


if __name__ == "__main__":
    sys.exit(main())
