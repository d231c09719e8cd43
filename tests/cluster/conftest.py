"""Fixtures of the cluster tests: a coordinator (this process) with worker processes.

Everything a fixture starts, it stops: workers get SIGTERM (drain, leave, exit)
and are killed only if they linger; the coordinator's system is shut down last.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cluster_kit import LOOPBACK, Worker, wait_members

from runtime import ActorSystem
from transport import generate_keys

WORKERS = ("worker-1", "worker-2")


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

    def add_worker(self, name: str, *, keys: Path | None = None, wait: bool = True) -> Worker:
        worker = Worker(name, self.seed, keys=keys or self.keys)
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


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., Cluster]]:
    """``cluster_factory(workers=..., keys=..., **ActorSystem options)``; stopped at teardown."""
    started: list[Cluster] = []

    def make(*args: Any, **kwargs: Any) -> Cluster:
        cluster = start_cluster(*args, **kwargs)
        started.append(cluster)
        return cluster

    yield make
    lingered = [name for cluster in reversed(started) for name in cluster.stop()]
    assert not lingered, f"workers did not exit on SIGTERM within 15 s: {lingered}"


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[Cluster]:
    """One plaintext coordinator + two workers for the tests that leave the cluster intact."""
    cluster = start_cluster()
    yield cluster
    lingered = cluster.stop()
    assert not lingered, f"workers did not exit on SIGTERM within 15 s: {lingered}"
