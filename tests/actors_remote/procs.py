"""Worker processes of the actors-across-hosts tests (``remote_app``), and a coordinator.

Each worker's stdout+stderr lines are read by a thread; tests wait for its
``up`` line with a deadline, kill it with SIGKILL, and every process is reaped.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime import ActorSystem, SQLiteStore
from tests.actors_remote.remote_app import fast_transport
from tests.support import LineProcess, wait_until

START_TIMEOUT = 30.0


class AppWorker(LineProcess):
    """A ``remote_app`` worker process; it prints ``up …`` once it has joined."""

    def __init__(self, name: str, seed: str, store: Path, *extra: str) -> None:
        argv = [sys.executable, "-m", "tests.actors_remote.remote_app", name, seed, str(store)]
        super().__init__([*argv, *extra], name=name)

    def wait_up(self) -> None:
        if self.wait_line("up ", START_TIMEOUT) is None:
            raise AssertionError(f"{self.name} did not come up:\n{self.output()}")

    def kill(self) -> None:
        """kill -9, reaped."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


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
