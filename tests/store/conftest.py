"""Fixtures for the checkpoint store tests.

``store`` is parametrized over every ``CheckpointStore`` implementation, so each
test in ``test_conformance.py`` runs against all of them: to check a new store,
add its factory to ``STORE_FACTORIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors import ManualClock
from runtime.store import CheckpointStore, MemoryStore, SQLiteStore

StoreFactory = Callable[[Path, ManualClock], CheckpointStore]

STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": lambda _tmp, clock: MemoryStore(clock=clock),
    "sqlite": lambda tmp, clock: SQLiteStore(tmp / "state.db", clock=clock),
    "sqlite-normal": lambda tmp, clock: SQLiteStore(
        tmp / "state.db", synchronous="NORMAL", clock=clock
    ),
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[CheckpointStore]:
    created = STORE_FACTORIES[request.param](tmp_path, clock)
    yield created
    created.close()
