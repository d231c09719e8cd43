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
from runtime.store import CheckpointStore, MemoryStore, PostgresStore, SQLiteStore

StoreFactory = Callable[[Path, ManualClock, pytest.FixtureRequest], CheckpointStore]


def _postgres(_tmp: Path, clock: ManualClock, request: pytest.FixtureRequest) -> CheckpointStore:
    """A store in a fresh schema of the session's PostgreSQL server (started on first use)."""
    url = request.getfixturevalue("postgres_url")
    return PostgresStore(url, schema=request.getfixturevalue("postgres_schema"), clock=clock)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": lambda _tmp, clock, _request: MemoryStore(clock=clock),
    "sqlite": lambda tmp, clock, _request: SQLiteStore(tmp / "state.db", clock=clock),
    "sqlite-normal": lambda tmp, clock, _request: SQLiteStore(
        tmp / "state.db", synchronous="NORMAL", clock=clock
    ),
    "postgres": _postgres,
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[CheckpointStore]:
    created = STORE_FACTORIES[request.param](tmp_path, clock, request)
    yield created
    created.close()
