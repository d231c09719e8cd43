"""Shared fixtures: real actor systems, an event recorder that waits with deadlines."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import ActorSystem, ManualClock
from runtime.events import Event

ROOT = Path(__file__).resolve().parent.parent


def actorflow(*args: str, timeout: float = 50) -> subprocess.CompletedProcess[str]:
    """Run the ``actorflow`` CLI in a fresh interpreter, as a user would (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "runtime._cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Recorder:
    """An observer that keeps every event and lets a test wait for one, with a deadline."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def on_event(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        with self._cond:
            found: list[Event] = []

            def seen() -> bool:
                found[:] = [e for e in self.events if predicate(e)]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise AssertionError(f"no matching event within {timeout}s; saw {self.events!r}")
            return found[0]

    def names(self, *, run_level: bool = True) -> list[str]:
        """Compact ``Kind:step[:old>new]`` strings, for exact sequence assertions."""
        out = []
        for e in self.events:
            step = getattr(e, "step", None) or getattr(e, "node_id", None)
            if step is None and not run_level:
                continue
            label = f"{type(e).__name__}:{step or '-'}"
            if hasattr(e, "old"):
                label += f":{e.old}>{e.new}"
            out.append(label)
        return out


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


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


def gate() -> tuple[threading.Event, Callable[[Any], Any]]:
    """A task that blocks until the returned event is set (bounded by 10 s)."""
    release = threading.Event()

    def blocked(ctx: Any) -> str:
        if not release.wait(10):
            raise TimeoutError("gate never opened")
        return "released"

    return release, blocked
