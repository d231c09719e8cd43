"""Group commit: writes that become due together share one transaction.

Leader/follower, no extra thread: a writer queues its item; the first writer
to find no commit under way becomes the leader, takes every item queued (up
to ``max_batch``) and commits them with one ``commit`` call, while writers
arriving meanwhile queue up behind it; when it is done, it hands each writer
its own result and gives the lead up, and the next waiting writer leads the
next batch. Before taking its batch a leader waits, at most ``window``
seconds, for writers that announced themselves (``arrival``) but have not
queued yet, so writes that are due at the same moment land together; a lone
writer never waits.

A writer returns only once the batch holding its item is committed, with its
own result: ``commit`` returns one entry per item, ``None`` or the exception
that item's writer raises, so one item's failure does not fail the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from actors import PersistenceError

__all__ = ["Arrival", "GroupCommitter", "GroupStats"]

T = TypeVar("T")

Commit = Callable[[Sequence[T]], Sequence[BaseException | None]]


@dataclass(frozen=True)
class GroupStats:
    """Counters since the committer was made; ``queued``: items waiting right now."""

    submitted: int
    batches: int
    largest_batch: int
    queued: int


class _Ticket(Generic[T]):
    __slots__ = ("done", "error", "item")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None


class Arrival(Generic[T]):
    """A write on its way to the committer (see ``GroupCommitter.arrival``)."""

    def __init__(self, committer: GroupCommitter[T]) -> None:
        self._committer = committer
        self.submitted = False

    def submit(self, item: T) -> None:
        """Queue ``item`` and return once it is committed; raise its own error if it failed."""
        self.submitted = True
        self._committer._submit(item, arrived=True)


class GroupCommitter(Generic[T]):
    """Commits items from many threads in batches (see the module docstring)."""

    def __init__(self, commit: Commit[T], *, window: float, max_batch: int) -> None:
        if not window >= 0:
            raise ValueError(f"window must be >= 0 seconds, got {window!r}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        self._commit = commit
        self._window = window
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Ticket[T]] = []
        self._arriving = 0  # announced, not queued yet
        self._leading = False
        self._submitted = self._batches = self._largest = 0

    @contextmanager
    def arrival(self) -> Iterator[Arrival[T]]:
        """Announce a write, prepare it, then ``submit`` it: a leader may wait for it."""
        arrival: Arrival[T] = Arrival(self)
        with self._cond:
            self._arriving += 1
        try:
            yield arrival
        finally:
            if not arrival.submitted:  # given up before queueing: nobody waits for it
                with self._cond:
                    self._arriving -= 1
                    self._cond.notify_all()

    def submit(self, item: T) -> None:
        """Queue ``item`` unannounced and return once it is committed (or raise its error)."""
        self._submit(item, arrived=False)

    def stats(self) -> GroupStats:
        with self._cond:
            return GroupStats(self._submitted, self._batches, self._largest, len(self._queue))

    def _submit(self, item: T, *, arrived: bool) -> None:
        ticket = _Ticket(item)
        with self._cond:
            self._queue.append(ticket)
            self._submitted += 1
            if arrived:
                self._arriving -= 1
            self._cond.notify_all()
        while True:
            with self._cond:
                while self._leading and not ticket.done:
                    self._cond.wait()
                if ticket.done:
                    break
                self._leading = True
                batch = self._take_batch()
            self._lead(batch, ticket)
        if ticket.error is not None:
            raise ticket.error

    def _take_batch(self) -> list[_Ticket[T]]:
        """Under the lock: wait (bounded) for announced writers, then take the batch."""
        deadline = time.monotonic() + self._window
        while self._arriving > 0 and len(self._queue) < self._max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        return batch

    def _lead(self, batch: list[_Ticket[T]], own: _Ticket[T]) -> None:
        try:
            results = list(self._commit([ticket.item for ticket in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"commit gave {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - each waiting writer gets it as its error
            results = [exc if ticket is own else _failed_with(exc) for ticket in batch]
        except BaseException as exc:  # KeyboardInterrupt: never leave the followers waiting
            self._finish(batch, [_failed_with(exc) for _ in batch])
            raise
        self._finish(batch, results)

    def _finish(self, batch: list[_Ticket[T]], results: list[BaseException | None]) -> None:
        with self._cond:
            for ticket, result in zip(batch, results, strict=True):
                ticket.done, ticket.error = True, result
            self._leading = False
            self._batches += 1
            self._largest = max(self._largest, len(batch))
            self._cond.notify_all()


def _failed_with(exc: BaseException) -> PersistenceError:
    error = PersistenceError(f"group commit failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
