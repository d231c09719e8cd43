"""Helpers of the cluster tests: worker processes, side-effect logs, bounded waits.

Workers are real ``python -m runtime._cli node`` processes serving
``tests.cluster.cluster_app``; ``start_cluster`` starts a coordinator (this
process) and its workers. Tests wait on their stdout lines, on events
(``EventRecorder`` of ``tests.support``), or poll state with ``wait_until``;
nothing sleeps to wait for something to happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import ActorSystem, node_command, task
from runtime import events as ev
from tests.cluster import cluster_app
from tests.support import LineProcess, child_env, wait_until
from transport import generate_keys

LOOPBACK = "tcp://127.0.0.1:0"
NODE_ENV = "CLUSTER_TEST_NODE"
START_TIMEOUT = 30.0
WORKERS = ("worker-1", "worker-2")


class Worker(LineProcess):
    """An ``actorflow node`` process; its stdout+stderr lines are collected by a thread."""

    def __init__(
        self,
        name: str,
        seed: str | None,
        *,
        keys: Path | None = None,
        drain_timeout: float = 10.0,
        apps: tuple[str, ...] = ("tests.cluster.cluster_app",),
        listen: str = LOOPBACK,
        options: tuple[str, ...] = (),
        metrics: str | None = None,
    ) -> None:
        command = node_command(
            name,
            join=[seed] if seed is not None else [],
            listen=listen,
            keys=keys,
            plaintext=keys is None,
            apps=apps,
            drain_timeout=drain_timeout,
            metrics=metrics,
        )
        command += options
        # tests.cluster.cluster_app (and tests.support) from the root, whatever the cwd.
        super().__init__(command, name=name, env=child_env(**{NODE_ENV: name}))

    def wait_line(self, prefix: str, timeout: float = START_TIMEOUT) -> str | None:
        return super().wait_line(prefix, timeout)

    def wait_up(self, timeout: float = START_TIMEOUT) -> str:
        """Wait for the node's ``up`` line; returns the address it listens on."""
        line = self.wait_line(f"node {self.name} up at ", timeout)
        if line is None:
            raise AssertionError(f"worker {self.name} did not come up:\n{self.output()}")
        return line.rsplit(" ", 1)[-1]

    def wait_text(self, text: str, timeout: float = START_TIMEOUT) -> str | None:
        """The first line containing ``text``; None if none came within ``timeout``/EOF."""
        return self.wait_lines(
            lambda lines: next((ln for ln in lines if text in ln), None), timeout
        )

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def exit_code(self, timeout: float) -> int | None:
        """The exit code within ``timeout``; else None, with the threads' stacks in output()."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGUSR1)  # serve dumps every thread's stack
            self.wait_line("-- end of stack dump", timeout=3)
            return None

    def lingering(self) -> None:
        self.signal(signal.SIGUSR1)  # serve dumps every thread's stack
        self.wait_line("-- end of stack dump", timeout=3)
        print(f"worker {self.name} did not exit on SIGTERM:\n{self.output()}")


@dataclass
class Cluster:
    system: ActorSystem
    workers: dict[str, Worker] = field(default_factory=dict)
    keys: Path | None = None

    @property
    def seed(self) -> str:
        address = self.system.address
        assert address is not None
        return f"coordinator@{address}" if self.keys is not None else address

    def add_worker(
        self, name: str, *, keys: Path | None = None, wait: bool = True, **options: Any
    ) -> Worker:
        """Start one more worker (``options``: those of ``Worker``, e.g. ``apps=()``)."""
        worker = Worker(name, self.seed, keys=keys or self.keys, **options)
        self.workers[name] = worker
        if wait:
            worker.wait_up()
        return worker

    def stop(self) -> list[str]:
        """Stop every worker (SIGTERM), then the coordinator; returns the workers that lingered."""
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.signal(signal.SIGTERM)
        lingered = [name for name, worker in self.workers.items() if worker.stop()]
        self.system.shutdown()
        return lingered


def make_keys(directory: Path, names: tuple[str, ...] = ("coordinator", *WORKERS)) -> Path:
    for name in names:
        generate_keys(directory, name)
    return directory


def start_cluster(
    workers: tuple[str, ...] = WORKERS, *, keys: Path | None = None, **options: Any
) -> Cluster:
    """A coordinator named ``coordinator`` and one process per worker name, all up."""
    system = ActorSystem(
        "coordinator", listen=LOOPBACK, keys=keys, plaintext=keys is None, **options
    )
    cluster = Cluster(system, keys=keys)
    try:
        for name in workers:  # start them all, then wait: they boot in parallel
            cluster.add_worker(name, wait=False)
        for worker in cluster.workers.values():
            worker.wait_up()
        wait_members(system, {"coordinator", *workers})
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_members(system: ActorSystem, names: set[str], timeout: float = START_TIMEOUT) -> None:
    """Poll the member table (with a deadline) until every one of ``names`` is up."""
    if not wait_until(
        lambda: all(system.members().get(name) == "up" for name in names), timeout, interval=0.02
    ):
        raise AssertionError(f"members not all up within {timeout}s: {system.members()}")


def wait_path(path: Path, timeout: float = 15.0) -> None:
    """Poll (with a deadline) until ``path`` exists."""
    if not wait_until(path.exists, timeout):
        raise AssertionError(f"{path} did not appear within {timeout}s")


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


def steps_of(*names: str, **options: Any) -> Any:
    """``step`` tasks named ``names``, one after the other."""
    wf = task(cluster_app.step, name=names[0], **options)
    for name in names[1:]:
        wf = wf.then(task(cluster_app.step, name=name, **options))
    return wf


def is_started(step: str, attempt: int | None = None) -> Callable[[ev.Event], bool]:
    """A ``Started`` event of ``step`` (of its attempt ``attempt``, when given)."""
    return lambda e: isinstance(e, ev.Started) and e.step == step and attempt in (None, e.attempt)
