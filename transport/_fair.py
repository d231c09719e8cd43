"""The dispatch thread's queue: one FIFO per sender, served round-robin, bounded per sender.

A single first-in-first-out queue let one peer that floods the node (tells to
a gone actor, asks it cannot answer) push every other peer's asks behind tens
of thousands of its jobs, and then out of a full queue. Here each sender
queues behind itself only: the dispatch thread takes one job from each sender
with work in turn, so a peer with one ask waiting is served after at most one
job of every other busy peer, however much they queued.

Bounds: a sender may hold ``per_sender`` jobs; past that its new jobs are
refused (the caller answers ``Overloaded`` or counts a dropped tell against
that sender). ``total`` bounds the jobs of all senders together, but a sender
holding fewer than ``_RESERVE`` jobs is always accepted: a light peer is
never refused because heavy ones filled the queue.

Order: per sender, FIFO. A job of this node itself (``local``, e.g. the
runtime's ``node_lost`` notice) is a barrier: it runs only after every job
queued before it, whoever sent those, as with one FIFO queue.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from transport._workers import join_worker

__all__ = ["FairDispatcher"]

log = logging.getLogger(__name__)

_RESERVE = 16  # a sender holding fewer jobs than this is accepted past the total bound
_WAKE_EVERY = 64  # jobs run between two calls of ``after_jobs`` while busy
_YIELD_EVERY = 16  # jobs run between two offers of the GIL to other threads while busy


class FairDispatcher:
    """Runs jobs on one named daemon thread: per-sender FIFO, senders round-robin.

    Args:
        thread_name: name of the thread (``actorflow-dispatch-<node>``).
        local: this node's name; its jobs are barriers (see the module docstring).
        per_sender: most jobs one sender may have waiting.
        total: most jobs waiting in all (light senders excepted, see above).
        after_jobs: called on the thread after a run of jobs (when the queues are
            empty, and every ``_WAKE_EVERY`` jobs while busy): where the outbox
            sends the wake-up for the answers those jobs posted, once for all.
    """

    def __init__(
        self,
        thread_name: str,
        *,
        local: str,
        per_sender: int,
        total: int,
        after_jobs: Callable[[], None] | None = None,
    ) -> None:
        self._local = local
        self._per_sender = per_sender
        self._total = total
        self._reserve = min(_RESERVE, total, per_sender)
        self.after_jobs = after_jobs
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict[str, deque[tuple[int, Callable[[], None]]]] = {}
        self._ring: deque[str] = deque()  # senders with work, in serving order
        self._queued = 0
        self._running = 0  # 1 while a job runs
        self._running_sender: str | None = None  # whose job runs
        self._seq = itertools.count()
        self._stopping = False
        self._sleeping = False  # the thread waits for work (submit must notify it)
        self._room_waiters = 0  # local submitters waiting for room (a take must notify them)
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def stopping(self) -> bool:
        return self._stopping

    def submit(self, sender: str, job: Callable[[], None], wait: float = 0.0) -> bool:
        """Queue ``job`` for ``sender``; False if over its bound (or stopping).

        With ``wait`` > 0, a caller other than the dispatch thread waits that long
        for room (local senders only: the I/O thread never waits).
        """
        if wait > 0 and threading.current_thread() is self._thread:
            wait = 0.0  # it would only be waiting for itself
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                if self._stopping:
                    return False
                if self._has_room(sender):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._room_waiters += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._room_waiters -= 1
            queue = self._queues.get(sender)
            if queue is None:
                queue = self._queues[sender] = deque()
            if not queue:
                self._ring.append(sender)
            queue.append((next(self._seq), job))
            self._queued += 1
            if self._sleeping:
                self._cond.notify_all()
        return True

    def _has_room(self, sender: str) -> bool:
        queue = self._queues.get(sender)
        held = len(queue) if queue is not None else 0
        if held >= self._per_sender:
            return False
        return held < self._reserve or self._queued < self._total

    def depth(self) -> int:
        """Jobs waiting, all senders."""
        return self._queued

    def depth_of(self, sender: str) -> int:
        """Jobs of ``sender`` waiting (read without the lock: a hint)."""
        queue = self._queues.get(sender)
        return len(queue) if queue is not None else 0

    def idle_for(self, sender: str) -> bool:
        """True when ``sender`` has no job waiting and no barrier (local job) waits.

        Exact for the only thread submitting for ``sender`` (the I/O thread for
        remote senders): a message it hands straight to its actor then overtakes
        nothing of the same sender's (nor a job of it still running).
        """
        if self._queues.get(sender) or self._running_sender == sender:
            return False
        return not self._queues.get(self._local)

    def idle(self) -> bool:
        """True when no job is queued or running."""
        return self._queued == 0 and self._running == 0

    def stop(self, timeout: float) -> bool:
        """Run the jobs already queued, then end the thread; True if it ended in time."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()  # the thread and any waiting submitter
        if not self._thread.is_alive():
            return True
        return join_worker(self._thread, timeout)

    # -- the thread ------------------------------------------------------------------

    def _take(self) -> tuple[str, Callable[[], None]] | None:
        """(Under the lock) The next job in round-robin order; None when there is none."""
        ring = self._ring
        for _ in range(len(ring)):
            sender = ring.popleft()
            queue = self._queues[sender]
            if sender == self._local and len(ring) > 0:
                head = queue[0][0]
                if any(self._queues[other][0][0] < head for other in ring):
                    ring.append(sender)  # a barrier: earlier jobs of others go first
                    continue
            _, job = queue.popleft()
            if queue:
                ring.append(sender)
            else:
                del self._queues[sender]  # forgotten: a departed sender leaves no entry
            self._queued -= 1
            return sender, job
        return None

    def _run(self) -> None:
        since_wake = 0
        while True:
            with self._cond:
                taken = self._take()
                while taken is None:
                    if self._stopping:
                        return
                    self._running = 0
                    self._running_sender = None
                    self._sleeping = True
                    self._cond.wait()
                    self._sleeping = False
                    taken = self._take()
                self._running_sender, job = taken
                self._running = 1
                if self._room_waiters:
                    self._cond.notify_all()  # a waiting local submitter may have room now
                empty = self._queued == 0
            try:
                job()
            except Exception:
                log.exception("job on %s raised", self._thread.name)
            since_wake += 1
            if since_wake % _YIELD_EVERY == 0:
                # Busy with a flood: let the threads waiting for the GIL (the I/O thread,
                # an actor answering another peer) in now, not at the next forced switch
                # (every 5 ms): their peers' answers would wait for it at every hop.
                time.sleep(0)
            if (empty or since_wake >= _WAKE_EVERY) and self.after_jobs is not None:
                since_wake = 0
                try:
                    self.after_jobs()
                except Exception:
                    log.exception("after_jobs on %s raised", self._thread.name)
            if empty:
                with self._cond:
                    if self._queued == 0:
                        self._running = 0
                        self._running_sender = None
