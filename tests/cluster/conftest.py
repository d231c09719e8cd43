"""Fixtures of the cluster tests: a coordinator (this process) with worker processes.

Everything a fixture starts, it stops: workers get SIGTERM (drain, leave, exit)
and are killed only if they linger; the coordinator's system is shut down last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster.cluster_kit import Cluster, start_cluster


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
