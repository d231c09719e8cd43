"""The outbox: frames any thread queues for a peer, sent in order, in batches, by the I/O thread.

Who calls what:

- Producers (API threads: ``tell``, ``ask``, answers from the dispatch
  thread) call ``post``. The frame goes into a ``collections.deque`` (appends
  and pops are atomic: no lock on this path) and the I/O thread is woken by an
  eventfd (``Wakeup``) it polls beside its sockets. A producer sets it only
  when no wake-up is pending already, so under a flood one wake-up carries
  thousands of frames.
- The I/O thread (``owner``) calls ``post`` too, for its own frames and for
  answers given on it (queued without a wake-up: its turn ends with a flush,
  so a burst of refusals goes out in batches too), and on each loop turn:
  ``poll_timeout``, ``clear_wakeup`` when ``fd`` was readable, then ``flush``
  (again at the end of the turn, when it queued frames); ``shut`` as it ends.
- The dispatch thread may hold its wake-ups (``hold_wakeups``): an answer it
  posts (``post`` without a timeout) is queued without one, and
  ``release_wakeups``, which it calls after each run of jobs, sends one
  wake-up for all of them (a burst of refusals costs one eventfd write, not
  one per answer).
- Whoever starts and stops that thread calls ``serve`` once it runs and
  ``close`` once it has ended (the eventfd must not close under its poll).

Batching: frames queued for the same peer when the I/O thread gets to them (a
burst, or a backlog) go out as one ``batch`` frame of at most ``_BATCH_FRAMES``
frames and ``_BATCH_BYTES`` bytes, and never more bytes than a receiver's
``max_containers`` allows; a frame over ``max_bin_len``, which a batch would
carry as a bin item, goes alone. A burst then costs one send, one receive and
one GIL hand-off per batch instead of per message. Nothing waits to fill a
batch: a lone frame goes out alone, at once.

Back-pressure: a frame a peer's full DEALER refuses (HWM) is never dropped; it
waits in that peer's backlog, retried every loop turn, in order. So do a
peer's frames past ``_PEER_SENDS`` sends in one turn: a flood of answers to
one peer (a hostile one asking as fast as it can) waits its turn while the
other peers' frames go out. The queue
plus the backlogs hold at most ``settings.outbox_size`` frames posted with a
``timeout``: past that, ``post`` blocks its *caller* (never the I/O thread)
until there is room, up to the timeout, then raises ``OutboxFull`` with
nothing queued. Frames posted without a timeout (answers, the I/O thread's
own) are not limited: the peers' ask windows bound them. A backlog is dropped,
and counted, only when its peer is no longer up (``node_down``) or its link is
gone (``no_route``). The bound is checked without a lock, so producers racing
past it together may overshoot it by one frame each.

Invariant (no lost wake-up): while the queue holds a frame, the I/O thread
will flush again without waiting for its idle poll timeout. Either the
eventfd is set, or about to be by the producer that found ``_wake_pending``
clear, or a flush that stopped at ``_FLUSH_BATCH`` with frames left set
``_wake_pending`` itself, and ``poll_timeout`` is 0 while frames are queued.
``flush`` clears the flag *before* it drains, so a frame appended after that
either is drained by it or sets the eventfd; and it never leaves the flag set
over an empty queue, which would make the next ``post`` skip the wake-up.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque

from transport._envelope import MAX_BATCH, encode_batch
from transport._errors import OutboxFull
from transport._parts import NodeParts
from transport._sockets import FULL, SENT, PeerLinks

__all__ = ["Outbox", "Wakeup"]

_FLUSH_BATCH = 20_000  # queued frames taken per loop turn (~0.2 us each), so ticks stay timely
_PEER_SENDS = 32  # sends (frames or batch frames) per peer per loop turn; the rest wait a turn
_BATCH_FRAMES = 256  # most queued frames sent together as one batch frame
_BATCH_BYTES = 256 * 1024  # most bytes of queued frames in one batch frame
_BACKLOG_POLL_MS = 1  # poll timeout while a peer's DEALER is full: retry soon
_ROOM_SLICE = 0.01  # seconds a blocked producer waits between two looks at the outbox
_ONE = (1).to_bytes(8, sys.byteorder)  # an eventfd takes an 8-byte counter increment


class Wakeup:
    """What a producer sets to wake the I/O thread, polled beside its sockets: an eventfd
    (one syscall to set, one to clear; a ``wake`` frame on a command socket cost
    several times that on both threads), or a non-blocking pipe where there is none.

    Not thread-safe by itself: ``Outbox`` sets and closes it under its lock.
    """

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            self.fd = self._write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - not Linux
            self.fd, self._write_fd = os.pipe()
            os.set_blocking(self.fd, False)
            os.set_blocking(self._write_fd, False)

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
            os.write(self._write_fd, _ONE)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):  # nothing to clear
            os.read(self.fd, 4096)

    def close(self) -> None:
        os.close(self.fd)
        if self._write_fd != self.fd:  # pragma: no cover - not Linux
            os.close(self._write_fd)


class Outbox:
    """Outgoing frames of one Transport, per peer, in order. See the module docstring.

    Args:
        node: this node's name (the sender of batch frames), ``outbox_size`` and the
            limits batches must fit, whose peers are up (a backlog to any other is
            dropped), drop counters, message ids for batch frames.
        links: the DEALERs the I/O thread sends through.
        owner: the I/O thread.
    """

    def __init__(self, node: NodeParts, links: PeerLinks, owner: threading.Thread) -> None:
        self._name = node.name
        self._settings = settings = node.settings
        self._membership = node.membership
        self._counters = node.counters
        self._next_id = node.next_id
        self._links = links
        self._owner = owner
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wakeup: Wakeup | None = Wakeup()  # closed (None) by close, under _wake_lock
        self._wake_lock = threading.Lock()
        self._wake_pending = False  # a wake-up is on its way (or the thread is draining)
        self._running = False  # the I/O thread serves the outbox (set by serve, cleared by shut)
        self._backlogs: dict[str, deque[bytes]] = {}  # I/O thread only: peers whose HWM is full
        self._backlogged = 0  # frames taken from the queue, not yet sent (I/O thread writes)
        self._refused: dict[str, tuple[bytes, int]] = {}  # I/O thread: batch a full DEALER refused
        self._room = threading.Event()  # set by the I/O thread when the outbox shrank
        self._waiters = 0  # producers blocked on a full outbox (a hint for the I/O thread)
        self._holder: threading.Thread | None = None  # whose answers wait for release_wakeups
        self._held_wakeup = False  # the holder queued frames since its last release
        # A batch must decode within the limits (every node of a cluster shares them),
        # and a receiver takes one only up to max_containers bytes: that bounds the
        # containers its items hold in all, so a batch costs no more than one frame.
        # Room is left for its own header (at most ~1 KiB with a 128-char sender name).
        limits = settings.limits
        self._batch_bytes = min(_BATCH_BYTES, limits.max_frame_bytes, limits.max_containers) - 2048
        self._batch_frames = min(_BATCH_FRAMES, limits.max_array_len, MAX_BATCH)
        self._batch_item_bytes = limits.max_bin_len  # a batched frame travels as a bin item

    # -- producers (any thread) -------------------------------------------------

    def post(self, node: str, frame: bytes, timeout: float | None = None) -> bool:
        """Queue ``frame`` for peer ``node`` from any thread; False if it cannot be sent.

        With ``timeout``, the frame counts against ``settings.outbox_size``: when
        the outbox is full, the calling thread waits up to ``timeout`` seconds for
        room and then raises ``OutboxFull``. Without it (answers, the I/O thread's
        own frames) the frame is queued regardless.

        Raises:
            OutboxFull: the outbox stayed full for ``timeout`` seconds.
        """
        current = threading.current_thread()
        if current is self._owner:
            # Answers given on the I/O thread (refusals) go out with the rest of its
            # turn's answers, in batches, when it flushes at the end of the turn.
            self._queue.append((node, frame))
            return True
        if not self._running:
            return False
        queue = self._queue
        if current is self._holder:
            if timeout is None:
                queue.append((node, frame))
                self._held_wakeup = True
                return True
            self.release_wakeups()  # it may wait for room: the I/O thread must be awake
        if timeout is not None and len(queue) + self._backlogged >= self._settings.outbox_size:
            self._wait_for_room(node, timeout)
        queue.append((node, frame))
        self._wake()
        return self._running

    def hold_wakeups(self, thread: threading.Thread) -> None:
        """Let ``thread`` queue answers without waking the I/O thread for each; it must
        call ``release_wakeups`` after each run of work (set once, before it runs)."""
        self._holder = thread

    def release_wakeups(self) -> None:
        """(The holder) Wake the I/O thread once for the answers queued since the last call."""
        if self._held_wakeup:
            self._held_wakeup = False
            self._wake()

    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            with self._wake_lock:
                if self._wakeup is not None:
                    self._wakeup.set()

    def held(self) -> int:
        """Frames queued or backlogged, not yet handed to a socket: what the bound counts."""
        return len(self._queue) + self._backlogged

    def _wait_for_room(self, node: str, timeout: float) -> None:
        """Block the calling (API) thread until the outbox is below its bound."""
        limit = self._settings.outbox_size
        deadline = time.monotonic() + timeout
        self._waiters += 1  # a hint only: waiters also look again every _ROOM_SLICE
        try:
            while len(self._queue) + self._backlogged >= limit:
                if not self._running:
                    return  # the caller's post reports the failure
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._counters.dropped("outbox_full")
                    raise OutboxFull(
                        f"{self._name}: outbox to {node} full ({limit} frames waiting) "
                        f"for {timeout}s: the peer does not keep up"
                    )
                self._room.clear()
                if len(self._queue) + self._backlogged < limit:
                    break
                self._room.wait(min(remaining, _ROOM_SLICE))
        finally:
            self._waiters -= 1

    # -- lifecycle ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the I/O thread serves the outbox (``post`` refuses frames otherwise)."""
        return self._running

    def serve(self) -> None:
        """(Starter) The I/O thread runs: accept frames from now on."""
        self._running = self._owner.is_alive()

    def shut(self) -> None:
        """(I/O thread, as it ends) Refuse frames from now on and release blocked producers."""
        self._running = False
        self._room.set()

    def close(self) -> None:
        """(Starter, once the I/O thread has ended) Close the wake-up; idempotent."""
        with self._wake_lock:
            if self._wakeup is not None:
                self._wakeup.close()
                self._wakeup = None

    # -- the I/O thread -------------------------------------------------------------

    @property
    def fd(self) -> int:
        """The wake-up's file descriptor, for the I/O thread's poller."""
        assert self._wakeup is not None  # closed only once the I/O thread has ended
        return self._wakeup.fd

    def clear_wakeup(self) -> None:
        """Consume the wake-up, before the flush: a later ``post`` sets it again."""
        wakeup = self._wakeup
        assert wakeup is not None  # closed only once the I/O thread has ended
        wakeup.clear()

    def poll_timeout(self, idle_ms: int) -> int:
        """How long the I/O thread may poll: 0 while frames wait, 1 ms while a backlog does."""
        if self._queue:
            return 0  # a flush stopped at its batch size: go on at once
        return _BACKLOG_POLL_MS if self._backlogs else idle_ms

    @property
    def queued(self) -> bool:
        """(I/O thread) Whether frames wait in the queue (for the end-of-turn flush)."""
        return bool(self._queue)

    def flush(self) -> None:
        """One loop turn: retry the backlogs, then send what the producers queued."""
        if self._backlogs:
            self._flush_backlogs()
        if self._queue:
            self._flush_queue()

    def _flush_queue(self) -> None:
        """Send what the API threads queued, in order per peer; a full DEALER starts a backlog."""
        # Clear the flag before draining: a producer that appends after this line
        # either sees it clear and sets the wake-up, or its frame is drained here.
        self._wake_pending = False
        outbox = self._queue
        taken = min(len(outbox), _FLUSH_BATCH)
        # Counted as backlogged before they leave the queue, so the bound producers
        # check never reads low; _send_queue uncounts each frame as it goes out.
        self._backlogged += taken
        queues: dict[str, deque[bytes]] = {}
        for _ in range(taken):
            node, frame = outbox.popleft()
            queue = queues.get(node)
            if queue is None:
                queue = queues[node] = self._backlogs.get(node) or deque()
            queue.append(frame)
        if taken == _FLUSH_BATCH and outbox:
            # More left: the next turn goes on without a wake-up (it polls with no wait).
            # Never when the queue is empty: the flag would stay set and the next post
            # would skip the wake-up, its frame waiting for the idle poll timeout.
            self._wake_pending = True
        for node, queue in queues.items():
            if node not in self._backlogs:  # behind a backlog, frames wait their turn
                self._send_queue(node, queue)
                if queue:
                    self._backlogs[node] = queue
        if self._waiters:
            self._room.set()

    def _flush_backlogs(self) -> None:
        """I/O thread: retry the peers whose DEALER was full, oldest frame first."""
        for node in list(self._backlogs):
            backlog = self._backlogs[node]
            if self._membership.status(node) != "up" and not self._links.routed(node):
                # A down peer must not hold the outbox bound (and every other peer's
                # senders) hostage: its frames are dropped, as its pending asks fail.
                self._counters.dropped("node_down", len(backlog))
                self._backlogged -= len(backlog)
                backlog.clear()
                self._refused.pop(node, None)
            self._send_queue(node, backlog)
            if not backlog:
                del self._backlogs[node]
        if self._waiters:
            self._room.set()

    def _send_queue(self, node: str, queue: deque[bytes]) -> None:
        """Send ``queue`` (counted in ``_backlogged``) from its head until it is empty, the
        peer's DEALER is full or the peer had its ``_PEER_SENDS`` this turn (the rest
        wait in its backlog: one peer's flood of answers cannot hold up the others');
        several frames in a row travel as one batch frame."""
        for _ in range(_PEER_SENDS):
            if not queue:
                return
            refused = self._refused.pop(node, None)
            frame, count = refused if refused is not None else self._next_frame(queue)
            result = self._links.try_send(node, frame, count)
            if result == FULL:
                if count > 1:  # its frames stay at the head: the retry reuses the batch
                    self._refused[node] = (frame, count)
                return
            for _ in range(count):
                queue.popleft()
            self._backlogged -= count
            if result != SENT:  # the link is gone (node down or left): drop the rest
                self._counters.dropped("no_route", len(queue))
                self._backlogged -= len(queue)
                queue.clear()

    def _next_frame(self, queue: deque[bytes]) -> tuple[bytes, int]:
        """The frame that carries the head of ``queue`` and how many queued frames it holds."""
        first = queue[0]
        item_max = self._batch_item_bytes
        if len(queue) == 1 or len(first) > self._batch_bytes or len(first) > item_max:
            return first, 1
        frames: list[bytes] = []
        size = 0
        for frame in queue:
            size += len(frame) + 5  # a bin item's header takes at most 5 bytes
            if len(frames) == self._batch_frames or size > self._batch_bytes:
                break
            if len(frame) > item_max:  # over max_bin_len: it goes alone, after this batch
                break
            frames.append(frame)
        if len(frames) == 1:
            return first, 1
        batch = encode_batch(self._next_id(), self._name, frames, self._settings.limits)
        return batch, len(frames)
