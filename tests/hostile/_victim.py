"""The node under attack, in its own process: ``serve`` with an echo actor.

Usage: python -m tests.hostile._victim [--per-sender N] [--shed-budget N]

Listens on loopback (plaintext), spawns ``Echo`` as ``echo``, prints
``READY <address>`` and serves (``runtime.serve``: SIGUSR1 dumps the stacks
to stderr, SIGTERM drains and exits). Per-message WARNING lines stay on, as
in production: their rate limiting is part of what is tested.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import pykka

from runtime import ActorSystem, serve
from transport import TransportSettings


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return ["echo", message]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="victim")
    parser.add_argument("--per-sender", type=int, default=5000)
    parser.add_argument("--shed-budget", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="[victim] %(name)s %(message)s")
    settings = TransportSettings(
        dispatch_queue_per_sender=args.per_sender, shed_budget=args.shed_budget
    )
    system = ActorSystem(args.name, listen="tcp://127.0.0.1:0", plaintext=True, transport=settings)
    system.spawn(Echo, name="echo")

    def ready(served: ActorSystem) -> None:
        print(f"READY {served.address}", flush=True)

    serve(system, drain_timeout=1.0, on_ready=ready, exit_after=True)


if __name__ == "__main__":
    main()
