"""Actors across hosts: failover of a supervised child after kill -9, and snapshot cost.

Rows:

* kill -9 of a child's node -> the restarted child answering an ask on another
  node (ms), beside the failure detector's bound for a small cluster
  (``2 * probe_interval + suspicion_timeout + 3 * check_interval`` of the
  settings used). Real worker processes
  (``python -m bench._actors_remote worker ...``) on loopback, one SQLite store.
* kill -9 of a singleton's node -> the singleton answering an ask through its
  ``SingletonRef`` (taken over by the other worker, resumed from its snapshot),
  beside the same bound.
* a child that snapshots after every message, asked N times on SQLite
  (synchronous FULL): us per message, beside a raw ``INSERT`` + ``COMMIT`` of
  the same size on its own WAL file, and beside the same child without snapshots.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._remote import ROOT, _read_line, _wait_members
from bench._row import Config, Family, Row, Series, interleaved
from runtime import (
    ActorSystem,
    ChildSpec,
    NodeLoad,
    Ref,
    SQLiteStore,
    SupervisedActor,
    TransportSettings,
    serve,
)

__all__ = ["FAMILY"]

_SINGLETON_LEASE = 3.0
_SETTINGS = TransportSettings(
    probe_interval=0.15,
    probe_timeout=0.06,
    suspicion_timeout=0.6,
    check_interval=0.05,
    pause_tolerance=0.4,
)


class BenchCounter(SupervisedActor):
    """Counts ``"add"``; snapshots after every message."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def snapshot(self) -> Any:
        return {"count": self.count, "pad": "x" * 64}

    def restore(self, state: Any) -> None:
        self.count = state["count"]

    def on_receive(self, message: Any) -> Any:
        if message == "add":
            self.count += 1
        return self.count


class PlainCounter(SupervisedActor):
    """The same without snapshots."""

    count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "add":
            self.count += 1
        return self.count


class _OnWorkers:
    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        names = sorted(c.node for c in candidates if c.node.startswith("bench-w"))
        return names[0] if names else candidates[0].node


def _worker(name: str, seed: str, store: str) -> int:
    system = ActorSystem(
        name,
        listen="tcp://127.0.0.1:0",
        join=[seed],
        plaintext=True,
        store=SQLiteStore(store),
        transport=_SETTINGS,
    )
    system.register_actor(BenchCounter)
    system.singleton("bench", BenchCounter, lease=_SINGLETON_LEASE)
    print("up", flush=True)
    serve(system, drain_timeout=0.5)
    return 0


def _spawn_worker(name: str, seed: str, store: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._actors_remote", "worker", name, seed, str(store)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        _read_line(process.stdout, "up", 60)
    except RuntimeError:
        process.kill()
        process.wait(10)
        raise RuntimeError(f"bench worker {name} did not start") from None
    return process


@contextmanager
def _bench_cluster(folder: Path) -> Iterator[tuple[ActorSystem, list[subprocess.Popen[str]]]]:
    """A coordinator (this process, no candidate) and two worker processes, all up."""
    store = folder / f"failover-{time.monotonic_ns()}.db"
    with ActorSystem(
        "bench-coord",
        listen="tcp://127.0.0.1:0",
        plaintext=True,
        store=SQLiteStore(store),
        transport=_SETTINGS,
    ) as system:
        seed = str(system.address)
        procs = [_spawn_worker(f"bench-w{i}", seed, store) for i in (1, 2)]
        try:
            _wait_members(system, {"bench-w1", "bench-w2"}, 30)
            yield system, procs
        finally:
            for process in procs:
                if process.poll() is None:
                    process.kill()
                process.wait(10)
                if process.stdout is not None:
                    process.stdout.close()


def _victim(procs: list[subprocess.Popen[str]], node: str) -> subprocess.Popen[str]:
    return procs[0] if node == "bench-w1" else procs[1]


def _child_failover_ms(folder: Path) -> float:
    with _bench_cluster(folder) as (system, procs):
        supervisor = system.supervise(
            [ChildSpec("c", BenchCounter, placement=_OnWorkers())], name="bench"
        )
        child: Ref = supervisor.ask("children")["c"]
        child.ask("add", timeout=10)
        victim = _victim(procs, child.address.node)
        started = time.perf_counter()
        os.kill(victim.pid, signal.SIGKILL)
        while time.perf_counter() - started < 60:
            now = supervisor.ask("children").get("c")
            if isinstance(now, Ref) and now.address != child.address:
                try:
                    if now.ask("get", timeout=5) == 1:
                        return (time.perf_counter() - started) * 1e3
                except Exception:  # not up yet: ask again
                    pass
            time.sleep(0.005)
        raise RuntimeError("the child was not restarted within 60 s")


def _singleton_failover_ms(folder: Path) -> float:
    with _bench_cluster(folder) as (system, procs):
        singleton = system.singleton_ref("bench")
        singleton.ask("add", timeout=30)
        holder = singleton.locate()
        assert holder is not None
        victim = _victim(procs, holder.node)
        started = time.perf_counter()
        os.kill(victim.pid, signal.SIGKILL)
        # ask() retries while the instance is re-placed; 1: resumed from its snapshot
        if singleton.ask("get", timeout=60) != 1:
            raise RuntimeError("the singleton did not resume from its snapshot")
        return (time.perf_counter() - started) * 1e3


def _us_per_ask(cls: type[SupervisedActor], folder: Path, count: int) -> float:
    store = SQLiteStore(folder / f"snap-{time.monotonic_ns()}.db")
    with ActorSystem("bench-snap", store=store) as system:
        child = system.supervise([ChildSpec("c", cls)], name="bench").ask("children")["c"]
        started = time.perf_counter()
        for _ in range(count):
            child.ask("add")
        elapsed = time.perf_counter() - started
    store.close()
    return elapsed / count * 1e6


def _us_per_raw_insert(folder: Path, count: int) -> float:
    conn = sqlite3.connect(folder / f"raw-{time.monotonic_ns()}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)")
    blob = b"x" * 80
    started = time.perf_counter()
    for i in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", ("k", blob + bytes([i % 256])))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed / count * 1e6


def run(config: Config) -> list[Row]:
    count = config.size(2000, 50)
    # SWIM, small cluster: next probe, its period, shortest suspicion, three ticks late
    bound_ms = (
        2 * _SETTINGS.probe_interval + _SETTINGS.suspicion_timeout + 3 * _SETTINGS.check_interval
    ) * 1e3
    with tempfile.TemporaryDirectory(prefix="bench-actors-") as tmp:
        folder = Path(tmp)
        snap, plain, raw = interleaved(
            config.repeats,
            [
                (
                    "child ask + snapshot (SQLite FULL)",
                    lambda: _us_per_ask(BenchCounter, folder, count),
                ),
                ("child ask, no snapshot", lambda: _us_per_ask(PlainCounter, folder, count)),
                ("raw INSERT + COMMIT (WAL, FULL)", lambda: _us_per_raw_insert(folder, count)),
            ],
        )
        runs = range(config.size(3, 1))
        failover = Series(
            "kill -9 -> restarted child answers", tuple(_child_failover_ms(folder) for _ in runs)
        )
        singleton = Series(
            "kill -9 -> singleton answers", tuple(_singleton_failover_ms(folder) for _ in runs)
        )
    bound = Series("failure detector bound", (bound_ms,) * len(failover.samples))
    return [
        Row(
            "actors_remote",
            "kill -9 of a child's node -> restarted child answers an ask elsewhere",
            "ms",
            failover,
            baselines=(bound,),
            note=f"probe every {_SETTINGS.probe_interval}s, suspicion >= "
            f"{_SETTINGS.suspicion_timeout}s, check {_SETTINGS.check_interval}s",
        ),
        Row(
            "actors_remote",
            "kill -9 of a singleton's node -> it answers from another node",
            "ms",
            singleton,
            baselines=(bound,),
            note=f"lease {_SINGLETON_LEASE}s: the takeover follows the detector, not the lease",
        ),
        Row(
            "actors_remote",
            f"snapshot after every message, {count} asks",
            "us/msg",
            snap,
            baselines=(raw, plain),
        ),
    ]


FAMILY = Family("actors_remote", run)

if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
    # Through the module's own name: the classes a peer names are bench._actors_remote:...
    from bench._actors_remote import _worker as worker

    sys.exit(worker(sys.argv[2], sys.argv[3], sys.argv[4]))
