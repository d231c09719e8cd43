"""Shared fixtures: real actor systems, a manual clock, an event recorder.

Helpers that are not fixtures (``wait_until``, ``EventRecorder``, ``gate``,
``actorflow``) live in ``tests/support.py``, importable from subprocesses too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from examples.embedded_postgres import EmbeddedPostgres
from runtime import ActorSystem, ManualClock
from tests.support import EventRecorder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL server for the whole test session (started on first use, then shared).

    Tests keep apart by schema (``postgres_url`` + ``PostgresStore(schema=...)``);
    the server is stopped and its folder deleted when the session ends.
    """
    server = EmbeddedPostgres(prefix="actorflow-test-pg-")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: EmbeddedPostgres) -> str:
    """The shared server's URL (use a fresh ``postgres_schema`` to start empty)."""
    return postgres_server.url


@pytest.fixture
def postgres_schema() -> str:
    """A schema name of this test's own: its tables start empty."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def recorder() -> EventRecorder:
    return EventRecorder()


@pytest.fixture
def system() -> Iterator[ActorSystem]:
    with ActorSystem("test") as actor_system:
        yield actor_system


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual_system(clock: ManualClock) -> Iterator[ActorSystem]:
    with ActorSystem("manual", clock=clock) as actor_system:
        yield actor_system


@pytest.fixture
def coordinator_and_peer() -> Iterator[tuple[ActorSystem, ActorSystem]]:
    """Two in-process members on loopback (plaintext): ``coord``, and ``peer`` joined to it."""
    with (
        ActorSystem("coord", listen="tcp://127.0.0.1:0", plaintext=True) as coordinator,
        ActorSystem(
            "peer", listen="tcp://127.0.0.1:0", join=[str(coordinator.address)], plaintext=True
        ) as peer,
    ):
        assert peer.cluster is not None
        yield coordinator, peer
