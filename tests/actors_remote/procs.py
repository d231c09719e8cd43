"""Worker processes of the actors-across-hosts tests (``remote_app``), and a coordinator.

Each worker's stdout+stderr lines are read by a thread; tests wait for its
``up`` line with a deadline, kill it with SIGKILL, and every process is reaped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime import ActorSystem, SQLiteStore
from tests.actors_remote.remote_app import fast_transport
from tests.support import ROOT, wait_until

START_TIMEOUT = 30.0


class AppWorker:
    def __init__(self, name: str, seed: str, store: Path, *extra: str) -> None:
        self.name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.actors_remote.remote_app",
                name,
                seed,
                str(store),
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_up(self) -> None:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (
                    any(line.startswith("up ") for line in self.lines)
                    or self.process.poll() is not None
                ),
                START_TIMEOUT,
            )
            if not ok or not any(line.startswith("up ") for line in self.lines):
                raise AssertionError(f"{self.name} did not come up:\n" + "\n".join(self.lines))

    def kill(self) -> None:
        """kill -9, reaped."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def coordinator(store: Path, **options: Any) -> Iterator[ActorSystem]:
    with ActorSystem(
        "coordinator",
        listen="tcp://127.0.0.1:0",
        plaintext=True,
        store=SQLiteStore(store),
        transport=fast_transport(),
        **options,
    ) as system:
        yield system


@contextmanager
def workers(
    system: ActorSystem, store: Path, names: list[str], *extra: str
) -> Iterator[dict[str, AppWorker]]:
    started: dict[str, AppWorker] = {}
    try:
        for name in names:
            started[name] = AppWorker(name, str(system.address), store, *extra)
        for worker in started.values():
            worker.wait_up()
        wait_members(system, set(names))
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def wait_members(system: ActorSystem, names: set[str], timeout: float = START_TIMEOUT) -> None:
    if not wait_until(lambda: all(system.members().get(n) == "up" for n in names), timeout, 0.02):
        raise AssertionError(f"members not all up within {timeout}s: {system.members()}")
