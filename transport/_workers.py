"""A named thread that runs submitted callables one at a time, in order.

The transport uses two: ``actorflow-dispatch-<node>`` calls the message handler
(never on the I/O thread, so a slow handler cannot stall the sockets), and
``actorflow-notify-<node>`` completes ask futures and runs member-event
callbacks (so user callbacks never run on the I/O thread either).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["SerialWorker", "join_worker"]

log = logging.getLogger(__name__)

_STOP = object()


def join_worker(thread: threading.Thread, timeout: float) -> bool:
    """Wait up to ``timeout`` for a worker thread told to stop (not from itself); True
    if it ended, else an error naming it is logged."""
    if thread is not threading.current_thread():
        thread.join(timeout)
    ended = not thread.is_alive()
    if not ended:
        log.error("thread %s did not stop within %.1fs (a job is blocked)", thread.name, timeout)
    return ended


class SerialWorker:
    """Runs jobs in FIFO order on one named daemon thread.

    A job that raises is logged and the worker carries on. ``submit`` never
    blocks: with a bounded queue it returns False when full.

    Args:
        thread_name: name of the worker thread (``actorflow-<role>-<node>``).
        max_queue: most jobs waiting; 0 means unbounded (used only where the
            producers are bounded themselves).
    """

    def __init__(self, thread_name: str, max_queue: int = 0) -> None:
        self._jobs: queue.Queue[Callable[[], None] | object] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Callable[[], None], wait: float = 0.0) -> bool:
        """Queue ``job``; False if the queue is (still) full or the worker is stopping.

        With ``wait`` > 0 a full queue is waited on for that long, except from the
        worker's own thread, which would only be waiting for itself.
        """
        if self._stopping:
            return False
        try:
            if wait > 0 and threading.current_thread() is not self._thread:
                self._jobs.put(job, timeout=wait)
            else:
                self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def depth(self) -> int:
        """Jobs waiting (approximate)."""
        return self._jobs.qsize()

    def idle(self) -> bool:
        """True when no job is queued or running (read without a lock: exact for a
        caller that is the only one submitting, a hint for anyone else)."""
        return self._jobs.unfinished_tasks == 0

    def stop(self, timeout: float) -> bool:
        """Run the jobs already queued, then end the thread; True if it ended in time."""
        self._stopping = True
        if not self._thread.is_alive():
            return True
        while True:  # make room for the stop marker in a full bounded queue: drop the oldest
            try:
                self._jobs.put_nowait(_STOP)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._jobs.get_nowait()
        return join_worker(self._thread, timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            try:
                job()  # type: ignore[operator]
            except Exception:
                log.exception("job on %s raised", self._thread.name)
            finally:
                self._jobs.task_done()
