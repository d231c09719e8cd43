"""A worker process of the actors-across-hosts tests (``python -m tests.actors_remote.remote_app``).

Arguments: NAME SEED STORE [--singleton FENCE_FILE [--lease-only]]. It joins SEED on loopback,
shares the SQLite file STORE, registers the test actor classes, optionally
becomes a candidate for the singleton ``ticker`` (a ``FencedTicker`` writing to
FENCE_FILE), prints ``up NAME PID`` and serves until SIGTERM (or kill -9).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path
from typing import Any

import pykka

from runtime import ActorSystem, SQLiteStore, TransportSettings, current_epoch, serve
from tests.actors_remote.watch_kit import Counter, Echo

SINGLETON_LEASE = 3.0


class FencedFile:
    """A resource that refuses a write whose fencing token is older than one it accepted.

    Lines ``accepted TOKEN PID`` / ``refused TOKEN PID``, under an exclusive file lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write(self, token: int, pid: int) -> bool:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            accepted = [int(line.split()[1]) for line in handle if line.startswith("accepted")]
            ok = not accepted or token >= max(accepted)
            handle.write(f"{'accepted' if ok else 'refused'} {token} {pid}\n")
            handle.flush()
            return ok

    def lines(self) -> list[tuple[str, int, int]]:
        if not self.path.exists():
            return []
        return [
            (kind, int(token), int(pid))
            for kind, token, pid in (line.split() for line in self.path.read_text().splitlines())
        ]


class FencedTicker(pykka.ThreadingActor):
    """The singleton of the tests: each ``"tick"`` writes its epoch and pid to a FencedFile."""

    def __init__(self, fence_file: str) -> None:
        super().__init__()
        self._fence = FencedFile(fence_file)
        self.ticks = 0

    def snapshot(self) -> Any:
        return self.ticks

    def restore(self, state: Any) -> None:
        self.ticks = state

    def on_receive(self, message: Any) -> Any:
        if message == "tick":
            epoch = current_epoch()
            assert epoch is not None
            self.ticks += 1
            return [self._fence.write(epoch, os.getpid()), os.getpid(), epoch, self.ticks]
        return None


def fast_transport() -> TransportSettings:
    # SWIM tuned faster than the defaults: a dead node is down within ~1.05 s in a small cluster
    return TransportSettings(
        probe_interval=0.15,
        probe_timeout=0.06,
        suspicion_timeout=0.6,
        check_interval=0.05,
        pause_tolerance=0.4,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("seed")
    parser.add_argument("store")
    parser.add_argument("--singleton", default=None)
    parser.add_argument("--lease-only", action="store_true", help="takeover_on_down=False")
    args = parser.parse_args(argv)
    system = ActorSystem(
        args.name,
        listen="tcp://127.0.0.1:0",
        join=[args.seed],
        plaintext=True,
        store=SQLiteStore(args.store),
        transport=fast_transport(),
    )
    for cls in (Counter, Echo, FencedTicker):
        system.register_actor(cls)
    if args.singleton is not None:
        system.singleton(
            "ticker",
            FencedTicker,
            args.singleton,
            lease=SINGLETON_LEASE,
            takeover_on_down=not args.lease_only,
        )
    print(f"up {args.name} {os.getpid()}", flush=True)
    serve(system, drain_timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
