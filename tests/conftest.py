"""Shared fixtures: real actor systems, a manual clock, an event recorder.

Helpers that are not fixtures (``wait_until``, ``EventRecorder``, ``gate``,
``actorflow``) live in ``tests/support.py``, importable from subprocesses too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime import ActorSystem, ManualClock
from tests.support import EventRecorder


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
