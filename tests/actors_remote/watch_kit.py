"""Helpers of the actors-across-hosts tests: a Terminated inbox, and small actor classes.

The classes are importable by name (``tests.actors_remote.watch_kit:Counter``), so
worker processes register them and peers start them there.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pykka

from runtime import SupervisedActor, Terminated, watch


class Inbox:
    """A watcher callable: keeps every ``Terminated`` it is given, waits with a deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.received: list[Terminated] = []

    def __call__(self, message: Terminated) -> None:
        with self._cond:
            self.received.append(message)
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 20.0) -> list[Terminated]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(
                    f"expected {count} Terminated within {timeout}s, got {self.received}"
                )
            return list(self.received)


class Echo(pykka.ThreadingActor):
    """Answers what it is asked; ``"crash"`` told makes it raise (a crash)."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("told to crash")
        if message == "pid":
            return os.getpid()
        return message


def _watch_and_keep(seen: list[Terminated], message: Any) -> Any:
    """A watcher's answer to ``message``: ``{"watch": ref}`` watches ref (``runtime.watch``,
    from inside), a Terminated is kept in ``seen``, ``"seen"`` answers a copy of them."""
    if isinstance(message, Terminated):
        seen.append(message)
    elif isinstance(message, dict) and "watch" in message:
        watch(message["watch"])
    elif message == "seen":
        return list(seen)
    return None


class Watching(pykka.ThreadingActor):
    """Watches the target it is told, from inside (``runtime.watch``); keeps its Terminated."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Terminated] = []

    def on_receive(self, message: Any) -> Any:
        return _watch_and_keep(self.seen, message)


class Counter(SupervisedActor):
    """Counts ``"add"`` messages; takes snapshots, so a restart resumes the count.

    ``"get"`` answers ``[count, pid]``; ``"crash"`` told raises.
    """

    def __init__(self, start: int = 0) -> None:
        super().__init__()
        self.count = start

    def snapshot(self) -> Any:
        return {"count": self.count}

    def restore(self, state: Any) -> None:
        self.count = state["count"]

    def on_receive(self, message: Any) -> Any:
        if message == "add":
            self.count += 1
            return self.count
        if message == "get":
            return [self.count, os.getpid()]
        if message == "crash":
            raise RuntimeError("told to crash")
        return None


class Plain(SupervisedActor):
    """A child without snapshots: ``"crash"`` told raises, anything else is echoed."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("told to crash")
        return message


class WatchingChild(SupervisedActor):
    """A supervised child that watches from inside, like ``Watching``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Terminated] = []

    def on_receive(self, message: Any) -> Any:
        return _watch_and_keep(self.seen, message)
