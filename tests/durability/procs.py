"""Shared helpers: worker subprocesses read with deadlines, the side-effect log, the store."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime import Checkpoint, RunSummary, SQLiteStore
from tests.support import ROOT, kill9_and_reap, kill_and_reap

WORKER = "tests.durability.chain_worker"  # run as a module from ROOT: it imports tests.support
LINE_TIMEOUT = 20.0
CHAIN = [f"step_{index}" for index in range(20)]
CHAIN_OUTPUT = list(range(20))


class Worker:
    """A ``chain_worker`` subprocess whose stdout lines are read with a deadline."""

    def __init__(self, mode: str, db: Path, run_id: str, log: Path, *options: str) -> None:
        self.args = [mode, str(db), run_id, str(log), *options]
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER, *self.args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.pid = self.process.pid
        self.seen: list[str] = []
        self.stderr = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"reader-{self.pid}", daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(
            target=self._read_stderr, name=f"stderr-{self.pid}", daemon=True
        )
        self._err_reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def describe(self) -> str:
        return f"worker {self.pid} {self.args!r}; stdout so far {self.seen!r}"

    def line(self, timeout: float = LINE_TIMEOUT) -> str:
        """The next stdout line; fails the test if none comes before the deadline."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.describe()} printed nothing for {timeout} s")
        if line is None:
            self._lines.put(None)  # stay at end of file for later calls
            code = self.process.wait(LINE_TIMEOUT)
            self._err_reader.join(LINE_TIMEOUT)
            pytest.fail(f"{self.describe()} exited with {code}; stderr:\n{self.stderr}")
        self.seen.append(line)
        return line

    def expect(self, prefix: str, timeout: float = LINE_TIMEOUT) -> str:
        """The next line, which must start with ``prefix``."""
        line = self.line(timeout)
        assert line.startswith(prefix), f"expected {prefix!r}, got {line!r} from {self.describe()}"
        return line

    def send(self, line: str = "go") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def kill9(self) -> None:
        """SIGKILL and reap: a dead-but-unreaped child still 'exists' for kill(pid, 0)."""
        kill9_and_reap(self.process, LINE_TIMEOUT)

    def exit_code(self) -> int:
        """Wait for a normal exit; returns the code (stderr is kept for failure messages)."""
        code = self.process.wait(LINE_TIMEOUT)
        self._err_reader.join(LINE_TIMEOUT)
        return code

    def finish(self) -> None:
        """Kill if still running, reap, and close the pipes."""
        kill_and_reap(self.process, LINE_TIMEOUT)
        self._reader.join(LINE_TIMEOUT)
        self._err_reader.join(LINE_TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@dataclass(frozen=True)
class Entry:
    """One line of the side-effect log: which step ran, in which process, which attempt."""

    step: str
    pid: int
    attempt: int
    key: str


def read_log(log: Path) -> list[Entry]:
    if not log.exists():
        return []
    entries = []
    for line in log.read_text(encoding="utf-8").splitlines():
        step, pid, attempt, key = line.split(" ")
        entries.append(Entry(step, int(pid), int(attempt), key))
    return entries


def counts(entries: list[Entry]) -> Counter[str]:
    return Counter(entry.step for entry in entries)


def load(db: Path, run_id: str) -> Checkpoint:
    with SQLiteStore(db) as store:
        return store.load(run_id)


def summary_of(db: Path, run_id: str) -> RunSummary:
    with SQLiteStore(db) as store:
        [summary] = [s for s in store.list() if s.run_id == run_id]
    return summary


def completed_steps(db: Path, run_id: str) -> list[str]:
    return [key for key, record in load(db, run_id).steps.items() if record.state == "Completed"]


def settle(db: Path) -> None:
    """Fold the WAL into the main file (the last connection to close does it)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not Path(f"{db}-wal").exists() or os.path.getsize(f"{db}-wal") == 0


def wait_step(worker: Worker, index: int) -> None:
    """Read up to ``STEP index`` (skipping ``STARTED``, which may come before or after STEP 0)."""
    while True:
        line = worker.line()
        if line.startswith("STARTED "):
            continue
        assert line == f"STEP {index}", f"expected STEP {index}, got {line!r}: {worker.describe()}"
        return


def finish_resumed_run(worker: Worker, run_id: str, first_step: int, length: int = 20) -> str:
    """Like ``finish_run`` after a resume, whose ``RESUMED`` line may come among the STEPs.

    A resumed run starts at once (inside the constructor with ``recover=True``),
    so its first steps can print before the main thread prints ``RESUMED``.
    """
    lines: list[str] = []
    while not lines or not lines[-1].startswith(("RESULT", "ERROR")):
        lines.append(worker.line())
    assert f"RESUMED {run_id}" in lines, f"{lines}: {worker.describe()}"
    steps = [int(line.split()[1]) for line in lines if line.startswith("STEP ")]
    assert steps == list(range(first_step, length)), f"{lines}: {worker.describe()}"
    return lines[-1]


def finish_run(worker: Worker, first_step: int, length: int = 20) -> str:
    """Read ``STEP first_step`` .. ``STEP length-1`` then the run's end line; returns that line."""
    for index in range(first_step, length):
        wait_step(worker, index)
    return worker.line()


def kill_at_step(spawn: Callable[..., Worker], db: Path, run_id: str, log: Path, k: int) -> Worker:
    """Run the gated chain until ``step_k`` is in flight (its side effect done), then kill -9."""
    owner = spawn("run", db, run_id, log, "--gate")
    for index in range(k):
        wait_step(owner, index)
        owner.send()
    wait_step(owner, k)
    owner.kill9()
    return owner
