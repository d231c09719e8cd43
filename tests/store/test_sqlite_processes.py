"""SQLiteStore across real processes: kill -9 durability, claim races, zombie fencing.

Each worker (``_store_worker.py``) reports on stdout; the tests wait for its
lines with deadlines, never with blind sleeps.
"""

from __future__ import annotations

import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from actors import RunBusy, StaleEpoch
from runtime.store import SQLiteStore, decode_value
from tests.store.store_testkit import append, step
from tests.support import ROOT, wait_until

WORKER = "tests.store._store_worker"  # run as a module from the root
LINE_TIMEOUT = 15.0


class Worker:
    """A worker subprocess whose stdout lines are read with a deadline."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"worker-reader-{args[0]}")
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = LINE_TIMEOUT) -> str:
        """The next stdout line; fails the test if none comes before the deadline."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"worker {self.process.args!r} printed nothing for {timeout} s")
        if line is None:
            pytest.fail(f"worker exited with {self.process.wait(LINE_TIMEOUT)} before replying")
        return line

    def rest(self) -> list[str]:
        """Every line still unread, once the worker has exited."""
        lines: list[str] = []
        while (line := self._lines.get(timeout=LINE_TIMEOUT)) is not None:
            lines.append(line)
        return lines

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def finish(self) -> None:
        """Kill if still running, reap, and close the pipes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(LINE_TIMEOUT)
        assert self.process.stdin is not None
        self.process.stdin.close()
        self._reader.join(LINE_TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(*args)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.finish()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_every_acknowledged_save_survives_kill_9(
    tmp_path: Path, spawn: Callable[..., Worker], synchronous: str
) -> None:
    db = tmp_path / "state.db"
    saver = spawn("saver", str(db), synchronous, "run-1")
    acked = 0
    while acked < 500:
        line = saver.line()
        assert line == f"acked {acked + 1}"
        acked += 1
    saver.signal(signal.SIGKILL)  # most likely in the middle of save 501
    assert saver.process.wait(LINE_TIMEOUT) == -signal.SIGKILL
    for line in saver.rest():  # saves acknowledged after we stopped counting count too
        assert line == f"acked {acked + 1}"
        acked += 1
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with SQLiteStore(db) as store:
        loaded = store.load("run-1")
    assert loaded.updated_at >= acked
    for index in range(1, acked + 1):
        output = loaded.steps[f"s{index}"].output
        assert output is not None
        assert decode_value(output, what="step output") == index


@pytest.mark.timeout(60)
def test_every_acknowledged_append_of_concurrent_runs_survives_kill_9(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    """Group commit: appends of 4 threads share transactions; each ack still means durable."""
    db = tmp_path / "state.db"
    writer = spawn("threads", str(db), "FULL", "4")
    acked: dict[str, int] = {}

    def count(line: str) -> None:
        _, run, number = line.split(" ")
        assert int(number) == acked.get(run, 0) + 1, line  # each run's acks in order
        acked[run] = int(number)

    while sum(acked.values()) < 600:
        count(writer.line())
    writer.signal(signal.SIGKILL)
    assert writer.process.wait(LINE_TIMEOUT) == -signal.SIGKILL
    for line in writer.rest():
        count(line)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with SQLiteStore(db) as store:
        for t in range(4):
            loaded = store.load(f"run-{t}")
            for index in range(1, acked.get(str(t), 0) + 1):
                output = loaded.steps[f"s{index}"].output
                assert output is not None
                assert decode_value(output, what="step output") == index


@pytest.mark.timeout(60)
def test_two_processes_claiming_the_same_run_at_once_have_exactly_one_winner(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db = tmp_path / "state.db"
    SQLiteStore(db).close()  # create the schema before the race
    claimers = [spawn("claimer", str(db), owner) for owner in ("host-a", "host-b")]
    for claimer in claimers:
        assert claimer.line() == "ready"
    for round_number in range(20):
        run_id = f"run-{round_number}"
        for claimer in claimers:
            claimer.send(run_id)
        outcomes = sorted(claimer.line() for claimer in claimers)
        assert outcomes == [f"busy {run_id}", f"won {run_id} 1"]


@pytest.mark.timeout(60)
def test_a_paused_zombie_that_lost_its_lease_cannot_append_or_renew(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db = tmp_path / "state.db"
    zombie = spawn("zombie", str(db), "run-1", "0.5")
    assert zombie.line() == "claimed 1"
    zombie.signal(signal.SIGSTOP)
    with SQLiteStore(db) as store:
        epoch = claim_when_lease_expires(store, "run-1", timeout=10)
        assert epoch == 2
        append(store, "run-1", epoch, step("successor"))
        zombie.signal(signal.SIGCONT)
        zombie.send("append")
        assert zombie.line() == "stale"
        zombie.send("renew")
        assert zombie.line() == "stale"
        loaded = store.load("run-1")
        assert (list(loaded.steps), loaded.epoch) == (["successor"], 2)
        [summary] = store.list()
        assert summary.owner == "successor"


def claim_when_lease_expires(store: SQLiteStore, run_id: str, *, timeout: float) -> int:
    """Claim ``run_id`` as soon as the holder's lease runs out (bounded poll of the store)."""
    epochs: list[int] = []

    def claimed() -> bool:
        try:
            epochs.append(store.claim(run_id, owner="successor", lease=30))
        except RunBusy:
            return False
        return True

    assert wait_until(claimed, timeout, interval=0.05), f"{run_id} stayed busy for {timeout} s"
    return epochs[0]


@pytest.mark.timeout(60)
def test_processes_opening_a_fresh_file_at_once_all_get_the_same_schema(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db = tmp_path / "fresh" / "state.db"
    claimers = [spawn("claimer", str(db), f"host-{index}") for index in range(4)]
    for index, claimer in enumerate(claimers):
        assert claimer.line() == "ready"
        claimer.send(f"run-{index}")
        assert claimer.line() == f"won run-{index} 1"
    with SQLiteStore(db) as store:
        assert sorted(s.run_id for s in store.list()) == [f"run-{index}" for index in range(4)]


@pytest.mark.timeout(60)
def test_processes_opening_a_version_1_file_at_once_migrate_it_once(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db = tmp_path / "state.db"
    shutil.copyfile(Path(__file__).resolve().parent / "fixtures" / "v1.db", db)
    claimers = [spawn("claimer", str(db), f"host-{index}") for index in range(4)]
    for index, claimer in enumerate(claimers):
        assert claimer.line() == "ready"
        claimer.send(f"new-{index}")
        assert claimer.line() == f"won new-{index} 1"
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    with SQLiteStore(db) as store:
        runs = {s.run_id: s for s in store.list()}
        assert set(runs) == {"v1-done", "v1-failed", "v1-interrupted"} | {
            f"new-{index}" for index in range(4)
        }
        assert runs["v1-done"].steps_completed == 3
        assert list(store.load("v1-done").steps) == ["a", "b", "c"]


@pytest.mark.timeout(60)
def test_takeovers_racing_through_separate_connections_have_exactly_one_winner(
    tmp_path: Path,
) -> None:
    """Each handle is its own connection: SQLite locks between them as between processes."""
    db = tmp_path / "state.db"
    handles = [SQLiteStore(db) for _ in range(6)]
    try:
        handles[0].claim_actor("singleton/x", owner="dead/1", lease=30)
        for round_number in range(10):
            epoch = round_number + 1
            start = threading.Barrier(len(handles))

            def take(i: int, epoch: int = epoch, start: threading.Barrier = start) -> int | None:
                start.wait(10)
                handle = handles[i]
                won = handle.claim_actor("singleton/x", owner=f"m{i}", lease=30, if_epoch=epoch)
                if won is not None:  # the winner's snapshot at its epoch; the others' refused
                    handle.save_snapshot("singleton/x", epoch=won, state=b"w%d" % i)
                return won

            with ThreadPoolExecutor(len(handles)) as pool:
                results = list(pool.map(take, range(len(handles))))
            assert sorted(r for r in results if r is not None) == [epoch + 1]
            for i, handle in enumerate(handles):
                if results[i] is None:
                    with pytest.raises(StaleEpoch):
                        handle.save_snapshot("singleton/x", epoch=epoch, state=b"stale")
            snapshot = handles[0].load_snapshot("singleton/x")
            assert snapshot is not None and snapshot.epoch == epoch + 1
    finally:
        for handle in handles:
            handle.close()
