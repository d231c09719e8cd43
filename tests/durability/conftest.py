"""Fixtures of the durability tests: worker subprocesses that never outlive a test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .procs import Worker


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """``spawn(mode, db, run_id, log, *options)``; every worker is killed and reaped at teardown."""
    workers: list[Worker] = []

    def start(mode: str, db: Path, run_id: str, log: Path, *options: str) -> Worker:
        worker = Worker(mode, db, run_id, log, *options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.finish()
