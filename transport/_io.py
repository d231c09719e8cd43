"""The I/O thread: the one thread that owns every socket of a Transport.

Like pyzmq's ``ThreadAuthenticator``, ``IoLoop`` is a handle with two sides:

- API side (any thread): ``start``, ``post``, ``join``/``cancel_join``,
  ``stop``. Outgoing frames go into the *outbox*, a ``collections.deque``
  (appends and pops are atomic, no lock), and the I/O thread is woken by an
  eventfd (``_Wakeup``, polled beside the sockets): a producer sets it only
  when no wake-up is pending already, so under a flood one wake-up carries
  thousands of frames. Other commands (join, stop) go over one inproc PUSH
  socket; a lock serializes its users and the eventfd's (a ZeroMQ socket may
  move between threads only across a full memory barrier, which the lock
  provides) and sends are NOBLOCK.
- Batching: frames queued for the same peer when the I/O thread gets to them
  (a burst, or a backlog) go out as one ``batch`` frame (up to
  ``_BATCH_FRAMES`` frames or ``_BATCH_BYTES``; a frame over ``max_bin_len``,
  which a batch would carry as a bin item, goes alone), so a burst costs one
  send, one receive and one GIL hand-off per batch instead of per message.
  Nothing waits to fill a batch: a lone frame goes out alone, at once.
- Flow control: a frame the peer's DEALER cannot take (HWM full) is never
  dropped; it waits in a per-peer backlog, retried every loop turn, in order.
  The outbox plus the backlogs hold at most ``settings.outbox_size`` frames
  posted with a ``timeout``: past that, ``post`` blocks its *caller* (never
  the I/O thread) until there is room, up to the timeout. Frames the I/O
  thread posts itself, and answers, are not limited (they are bounded by the
  peers' ask windows). A backlog is dropped, and counted, only when its
  peer is declared down or leaves (``node_down`` / ``no_route``).
- Thread side (``actorflow-io-<node>``): the ROUTER bound to ``listen``, one
  DEALER per peer (``PeerLinks``), the command PULL and the ROUTER's monitor,
  polled in one loop; every received frame and every tick goes to
  ``NodeProtocol``. Sockets are created, used and closed on this thread only.

Traffic flows one way per socket: every message, replies included, goes out
through the sender's DEALER to the receiver's ROUTER, so each received frame
passes the same authentication check. The thread never blocks on a send and
never runs user code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import zmq
from zmq.utils.monitor import recv_monitor_message

from transport._codec import pack, unpack
from transport._envelope import MAX_BATCH, encode_batch
from transport._errors import NodeDown, OutboxFull
from transport._membership import MemberEvent, Membership
from transport._protocol import Deliver, NodeProtocol
from transport._reply import PendingAsks
from transport._security import Security
from transport._settings import TransportSettings
from transport._sockets import FULL, SENT, PeerLinks, make_router
from transport._stats import Counters

__all__ = ["IoLoop"]

log = logging.getLogger(__name__)

_BATCH = 500  # frames handled per socket per loop turn, so ticks and commands stay timely
_FLUSH_BATCH = 5000  # outbox frames sent per loop turn
_BATCH_FRAMES = 256  # most queued frames sent together as one batch frame
_BATCH_BYTES = 256 * 1024  # most bytes of queued frames in one batch frame
_ONE = (1).to_bytes(8, sys.byteorder)  # an eventfd takes an 8-byte counter increment
_BACKLOG_POLL_MS = 1  # poll timeout while a peer's DEALER is full: retry soon
_ROOM_SLICE = 0.01  # seconds a blocked producer sleeps between two looks at the outbox
_DRAIN_BUDGET = 0.05  # seconds of decoding per loop turn: heartbeats go out even under a flood
_MONITOR_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_DISCONNECTED
)


class _Wakeup:
    """What a producer sets to wake the I/O thread, polled beside its sockets: an eventfd
    (one syscall to set, one to clear; a ``wake`` frame on the command socket cost
    several times that on both threads), or a non-blocking pipe where there is none.

    Not thread-safe by itself: ``IoLoop`` sets it under its command lock and
    closes it under that lock once the thread has ended.
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


def _readable(socket: zmq.Socket[Any]) -> bool:
    """Whether a message waits on ``socket`` (asked without raising ``zmq.Again``)."""
    return bool(cast(int, socket.get(zmq.EVENTS)) & zmq.POLLIN)


class IoLoop:
    """The I/O thread of one Transport and the API to command it. See the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        listen: str | None,
        security: Security | None,
        settings: TransportSettings,
        now: Callable[[], float],
        context: zmq.Context[Any],
        membership: Membership,
        pending: PendingAsks,
        counters: Counters,
        next_id: Callable[[], int],
        deliver: Deliver,
        notify: Callable[[MemberEvent], None],
        complete: Callable[[Any, bool, Any], None],
    ) -> None:
        self._name = name
        self._listen = listen
        self._settings = settings
        self._now = now
        self._context = context
        self._membership = membership
        self._pending = pending
        self._complete = complete
        self._counters = counters
        self._next_id = next_id
        self._command_endpoint = f"inproc://actorflow-io-{name}-{id(self):x}"
        self.thread = threading.Thread(target=self._run, name=f"actorflow-io-{name}", daemon=True)
        self._started = threading.Event()
        self._start_error: OSError | None = None
        self._push: zmq.Socket[Any] | None = None
        self._push_lock = threading.Lock()
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wakeup: _Wakeup | None = _Wakeup()  # closed (None) by stop, under _push_lock
        self._wake_pending = False  # a wake-up is on its way (or the thread is draining)
        self._running = False  # the thread is serving the outbox (set by start, cleared on exit)
        self._backlogs: dict[str, deque[bytes]] = {}  # I/O thread only: peers whose HWM is full
        self._backlogged = 0  # frames in the backlogs (written by the I/O thread only)
        self._refused: dict[str, tuple[bytes, int]] = {}  # I/O thread: batch a full DEALER refused
        self._room = threading.Event()  # set by the I/O thread when the outbox shrank
        self._waiters = 0  # producers blocked on a full outbox (a hint for the I/O thread)
        self._links = PeerLinks(context, settings, security, counters)
        # A batch must decode within the limits (every node of a cluster shares them),
        # and a receiver takes one only up to max_containers bytes: that bounds the
        # containers its items hold in all, so a batch costs no more than one frame.
        # Room is left for its own header (at most ~1 KiB with a 128-char sender name).
        limits = settings.limits
        self._batch_bytes = min(_BATCH_BYTES, limits.max_frame_bytes, limits.max_containers) - 2048
        self._batch_frames = min(_BATCH_FRAMES, limits.max_array_len, MAX_BATCH)
        self._batch_item_bytes = limits.max_bin_len  # a batched frame travels as a bin item
        self.protocol = NodeProtocol(
            name=name,
            security=security,
            settings=settings,
            now=now,
            membership=membership,
            pending=pending,
            counters=counters,
            links=self._links,
            next_id=next_id,
            deliver=deliver,
            notify=notify,
            complete=complete,
            post=self.post,
        )

    # -- API side (any thread) ---------------------------------------------

    @property
    def bound_address(self) -> str | None:
        return self.protocol.bound_address

    def start(self, timeout: float) -> None:
        """Start the thread, wait until its sockets are bound, open the command pipe.

        Raises:
            RuntimeError: the thread did not come up within ``timeout``.
            OSError: binding failed (the ZMQError is chained).
        """
        self.thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"I/O thread {self.thread.name} did not start within {timeout}s")
        if self._start_error is not None:
            self.thread.join(timeout)
            raise self._start_error
        push: zmq.Socket[Any] = self._context.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, 100_000)
        push.connect(self._command_endpoint)
        with self._push_lock:
            self._push = push
        self._running = self.thread.is_alive()

    def post(self, node: str, frame: bytes, timeout: float | None = None) -> bool:
        """Queue ``frame`` for peer ``node`` from any thread; False if it cannot be sent.

        With ``timeout``, the frame counts against ``settings.outbox_size``: when
        the outbox is full, the calling thread waits up to ``timeout`` seconds for
        room and then raises ``OutboxFull``. Without it (answers, the I/O thread's
        own frames) the frame is queued regardless.

        Raises:
            OutboxFull: the outbox stayed full for ``timeout`` seconds.
        """
        if threading.current_thread() is self.thread:
            return self._send_or_backlog(node, frame)
        if not self._running:
            return False
        outbox = self._outbox
        if timeout is not None and len(outbox) + self._backlogged >= self._settings.outbox_size:
            self._wait_for_room(node, timeout)
        outbox.append((node, frame))
        if not self._wake_pending:
            self._wake_pending = True
            with self._push_lock:
                if self._wakeup is None:
                    return False
                self._wakeup.set()
        return self._running

    def _wait_for_room(self, node: str, timeout: float) -> None:
        """Block the calling (API) thread until the outbox is below its bound."""
        limit = self._settings.outbox_size
        deadline = time.monotonic() + timeout
        self._waiters += 1  # a hint only: waiters also look again every _ROOM_SLICE
        try:
            while len(self._outbox) + self._backlogged >= limit:
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
                if len(self._outbox) + self._backlogged < limit:
                    break
                self._room.wait(min(remaining, _ROOM_SLICE))
        finally:
            self._waiters -= 1

    def join(self, token: int, seeds: Sequence[tuple[str | None, str]]) -> threading.Event:
        """Say hello to ``seeds`` until one answers; the event is set on the first welcome.

        Raises:
            NodeDown: the I/O thread is not running.
        """
        done = self.protocol.begin_join(token)
        if not self._command(b"join", token.to_bytes(8, "big"), pack([list(s) for s in seeds])):
            self.protocol.forget_join(token)
            raise NodeDown("cannot join: the transport's I/O thread is not running")
        return done

    def cancel_join(self, token: int) -> None:
        self.protocol.forget_join(token)
        self._command(b"join_cancel", token.to_bytes(8, "big"))

    def stop(self, timeout: float) -> bool:
        """Stop the thread (it closes its sockets) and close the command pipe; True if it ended."""
        if self.thread.is_alive():
            self._command(b"stop")
            self.thread.join(timeout)
        stopped = not self.thread.is_alive()
        with self._push_lock:
            if self._push is not None:
                self._push.close(linger=0)
                self._push = None
            if self._wakeup is not None and stopped:  # never under a live thread's poll
                self._wakeup.close()
                self._wakeup = None
        return stopped

    def _command(self, *parts: bytes) -> bool:
        with self._push_lock:
            if self._push is None or not self._running:
                return False
            try:
                self._push.send_multipart(parts, zmq.NOBLOCK)
            except zmq.Again:
                self._counters.dropped("outbox_full")
                return False
            return True

    # -- thread side ----------------------------------------------------------

    def _run(self) -> None:
        router: zmq.Socket[Any] | None = None
        monitor: zmq.Socket[Any] | None = None
        commands: zmq.Socket[Any] = self._context.socket(zmq.PULL)
        try:
            commands.setsockopt(zmq.LINGER, 0)
            commands.bind(self._command_endpoint)
            if self._listen is not None:
                router = make_router(self._context, self._settings, self.protocol.security)
                router.bind(self._listen)
                self.protocol.bound_address = router.getsockopt_string(zmq.LAST_ENDPOINT)
                self._membership.self_address = self.protocol.bound_address
                monitor = router.get_monitor_socket(_MONITOR_EVENTS)
        except zmq.ZMQError as exc:
            self._start_error = OSError(f"cannot bind {self._listen!r}: {exc}")
            self._start_error.__cause__ = exc
        self._started.set()
        try:
            if self._start_error is None:
                self._loop(commands, router, monitor)
        except Exception:
            log.exception("I/O thread %s crashed; the transport is down", self.thread.name)
        finally:
            self._running = False
            self._room.set()
            self._links.close_all()
            if router is not None and monitor is not None:
                router.disable_monitor()
                monitor.close(linger=0)
            if router is not None:
                router.close()
            commands.close(linger=0)
            for entry in self._pending.take_all():
                self._complete(entry.future, False, NodeDown("transport closed"))

    def _loop(
        self,
        commands: zmq.Socket[Any],
        router: zmq.Socket[Any] | None,
        monitor: zmq.Socket[Any] | None,
    ) -> None:
        poller = zmq.Poller()
        for socket in (commands, router, monitor):
            if socket is not None:
                poller.register(socket, zmq.POLLIN)
        wakeup = self._wakeup
        assert wakeup is not None  # closed only once this thread has ended
        poller.register(wakeup.fd, zmq.POLLIN)
        poll_ms = max(1, int(self._settings.check_interval * 1000))
        while True:
            ready = dict(poller.poll(self._poll_timeout(poll_ms)))
            if wakeup.fd in ready:
                wakeup.clear()  # before the flush: a later post sets it again
            if commands in ready and self._drain_commands(commands):
                return
            if self._backlogs:
                self._flush_backlogs()
            if self._outbox:
                self._flush_outbox()
            if router is not None and router in ready:
                self._drain_router(router)
            if monitor is not None and monitor in ready:
                self._drain_monitor(monitor)
            self.protocol.tick(self._now())

    def _drain_commands(self, commands: zmq.Socket[Any]) -> bool:
        """Run queued commands; True when told to stop."""
        for _ in range(_BATCH):
            try:
                parts = commands.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            verb = parts[0]
            if verb == b"join":
                seeds = [(name, address) for name, address in unpack(parts[2])]
                self.protocol.start_join(int.from_bytes(parts[1], "big"), seeds)
            elif verb == b"join_cancel":
                self.protocol.end_join(int.from_bytes(parts[1], "big"))
            elif verb == b"stop":
                return True
        return False

    def _poll_timeout(self, idle_ms: int) -> int:
        if self._outbox:
            return 0  # a flush stopped at its batch size: go on at once
        return _BACKLOG_POLL_MS if self._backlogs else idle_ms

    def _flush_outbox(self) -> None:
        """Send what the API threads queued, in order per peer; a full DEALER starts a backlog."""
        # Clear the flag before draining: a producer that appends after this line
        # either sees it clear and sets the wake-up, or its frame is drained here.
        self._wake_pending = False
        outbox = self._outbox
        taken = min(len(outbox), _FLUSH_BATCH)
        # Counted as backlogged before they leave the outbox, so the bound producers
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
            # Never when the outbox is empty: the flag would stay set and the next post
            # would skip the wake-up, its frame waiting for the idle poll timeout.
            self._wake_pending = True
        for node, queue in queues.items():
            if node not in self._backlogs:  # behind a backlog, frames wait their turn
                self._send_queue(node, queue)
                if queue:
                    self._backlogs[node] = queue
        if self._waiters:
            self._room.set()

    def _send_or_backlog(self, node: str, frame: bytes) -> bool:
        """I/O thread: send now, or queue behind earlier frames the peer has not taken yet."""
        backlog = self._backlogs.get(node)
        if backlog is not None:
            backlog.append(frame)
            self._backlogged += 1
            return True
        if self._links.try_send(node, frame) == FULL:
            self._backlogs[node] = deque((frame,))
            self._backlogged += 1
        return True

    def _flush_backlogs(self) -> None:
        """I/O thread: retry the peers whose DEALER was full, oldest frame first."""
        for node in list(self._backlogs):
            backlog = self._backlogs[node]
            if self._membership.status(node) != "up":
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
        """Send ``queue`` (counted in ``_backlogged``) from its head until it is empty or the
        peer's DEALER is full; several frames in a row travel as one batch frame."""
        while queue:
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

    def _drain_router(self, router: zmq.Socket[Any]) -> None:
        """Hand the waiting [routing id, payload] messages to the protocol, as many as
        ``_BATCH`` and ``_DRAIN_BUDGET`` allow.

        Two ``recv`` calls and a look at ``EVENTS`` before the next message cost a
        fraction of ``recv_multipart`` (which reads ``RCVMORE`` per part) and of the
        ``zmq.Again`` that would end the loop; this runs right after a delivery,
        while the woken actor or asker waits for the GIL.
        """
        secured = self.protocol.security is not None
        on_frames = self.protocol.on_frames
        recv = router.recv
        budget_end = time.monotonic() + _DRAIN_BUDGET
        received = 0
        try:
            for _ in range(_BATCH):
                try:
                    frame = recv(zmq.NOBLOCK, copy=False)
                    parts: list[Any] = [frame]
                    while frame.more:  # the rest of a message is there already
                        frame = recv(zmq.NOBLOCK, copy=False)
                        parts.append(frame)
                except zmq.Again:
                    return
                if not secured and len(parts) == 2:
                    parts[1] = frame.bytes  # plaintext: no User-Id to read, plain bytes
                received += 1
                on_frames(parts)
                if time.monotonic() > budget_end or not _readable(router):
                    return
        finally:
            self._counters.received(received)

    def _drain_monitor(self, monitor: zmq.Socket[Any]) -> None:
        for _ in range(_BATCH):
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                log.info(
                    "%s: a peer connection closed (peer gone, or it sent a frame over %d bytes)",
                    self._name,
                    self._settings.limits.max_frame_bytes,
                )
            else:
                name = zmq.Event(event["event"]).name
                self.protocol.refused_connection(f"refused a connection: {name}")
