"""Helpers of the cluster tests: worker processes, a timed event log, bounded waits.

Workers are real ``python -m runtime._cli node`` processes serving
``cluster_app``. Tests wait on their stdout lines, on events, or poll state
with a deadline; nothing sleeps to wait for something to happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime import ActorSystem, node_command
from runtime import events as ev

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOOPBACK = "tcp://127.0.0.1:0"
NODE_ENV = "CLUSTER_TEST_NODE"
START_TIMEOUT = 30.0


class Worker:
    """An ``actorflow node`` process; its stdout+stderr lines are collected by a thread."""

    def __init__(
        self,
        name: str,
        seed: str,
        *,
        keys: Path | None = None,
        drain_timeout: float = 10.0,
    ) -> None:
        self.name = name
        command = node_command(
            name,
            join=[seed],
            keys=keys,
            plaintext=keys is None,
            apps=["cluster_app"],
            drain_timeout=drain_timeout,
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        env[NODE_ENV] = name
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name=f"reader-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_line(self, prefix: str, timeout: float = START_TIMEOUT) -> str | None:
        """The first line starting with ``prefix``; None if none came within ``timeout``/EOF."""

        def found() -> str | None:
            return next((line for line in self.lines if line.startswith(prefix)), None)

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self._eof, timeout)
            return found()

    def wait_up(self, timeout: float = START_TIMEOUT) -> None:
        if self.wait_line(f"node {self.name} up at ", timeout) is None:
            raise AssertionError(f"worker {self.name} did not come up:\n{self.output()}")

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def exit_code(self, timeout: float) -> int | None:
        """The exit code within ``timeout``; else None, with the threads' stacks in output()."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGUSR1)  # cluster_app dumps every thread's stack
            self.wait_line("Current thread", timeout=3)
            return None

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM (drain and leave), SIGKILL if it lingers; always reaped. True: it lingered."""
        lingered = False
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                lingered = True
                self.signal(signal.SIGUSR1)  # cluster_app dumps every thread's stack
                self.wait_line("Current thread", timeout=3)
                print(f"worker {self.name} did not exit on SIGTERM:\n{self.output()}")
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return lingered


class EventLog:
    """An observer keeping every event with its arrival time; waits have deadlines."""

    def __init__(self, on_event: Callable[[ev.Event], None] | None = None) -> None:
        self.events: list[tuple[float, ev.Event]] = []
        self._cond = threading.Condition()
        self._hook = on_event

    def on_event(self, event: ev.Event) -> None:
        stamp = time.monotonic()
        if self._hook is not None:
            self._hook(event)
        with self._cond:
            self.events.append((stamp, event))
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[ev.Event], bool], timeout: float = 15.0
    ) -> tuple[float, ev.Event]:
        """The first matching event and when it arrived; fails after ``timeout``."""

        def match() -> tuple[float, ev.Event] | None:
            return next(((t, e) for t, e in self.events if predicate(e)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: match() is not None, timeout):
                raise AssertionError(f"no matching event within {timeout}s; saw {self.list()}")
            found = match()
            assert found is not None
            return found

    def list(self) -> list[ev.Event]:
        with self._cond:
            return [e for _, e in self.events]


def wait_members(system: ActorSystem, names: set[str], timeout: float = START_TIMEOUT) -> None:
    """Poll the member table (with a deadline) until every one of ``names`` is up."""
    deadline = time.monotonic() + timeout
    while not all(system.members().get(name) == "up" for name in names):
        if time.monotonic() > deadline:
            raise AssertionError(f"members not all up within {timeout}s: {system.members()}")
        time.sleep(0.02)


def wait_path(path: Path, timeout: float = 15.0) -> None:
    """Poll (with a deadline) until ``path`` exists."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


def log_lines(path: Path) -> list[tuple[str, str]]:
    """``(step, node)`` per line of a side-effect log written by ``cluster_app.record``."""
    if not path.exists():
        return []
    return [(line.split()[0], line.split()[1]) for line in path.read_text().splitlines()]


def step_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, _ in log_lines(path):
        counts[name] = counts.get(name, 0) + 1
    return counts


def started_nodes(events: list[ev.Event]) -> dict[str, str]:
    """Step -> node of its last ``Started`` event."""
    return {e.step: e.node for e in events if isinstance(e, ev.Started) and e.step is not None}


def any_of(*kinds: type[Any]) -> Callable[[ev.Event], bool]:
    return lambda event: isinstance(event, kinds)
