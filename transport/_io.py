"""The I/O thread: the one thread that owns every socket of a Transport.

Like pyzmq's ``ThreadAuthenticator``, ``IoLoop`` is a handle with two sides:

- API side (any thread): ``start``, ``join``/``cancel_join``, ``stop``.
  Outgoing frames go to ``outbox`` (``_outbox``: queueing, batching,
  back-pressure and the eventfd that wakes this thread). Other commands (join,
  stop) go over one inproc PUSH socket; a lock serializes its users (a ZeroMQ
  socket may move between threads only across a full memory barrier, which
  the lock provides) and sends are NOBLOCK.
- Thread side (``actorflow-io-<node>``): the ROUTER bound to ``listen``, one
  DEALER per peer (``PeerLinks``), the command PULL, the ROUTER's monitor and
  the outbox's wake-up, polled in one loop. Each turn flushes the outbox into
  the DEALERs, and every received frame and every tick goes to
  ``NodeProtocol``. Sockets are created, used and closed on this thread only.

Fairness between connections: one turn handles at most ``_PEER_STEPS``
envelopes of each ROUTER connection (keyed by its routing id): a frame is one
step, each envelope of a batch frame one more (``NodeProtocol.on_frames``
returns a batch as an iterator, so a batch of 256 tells can be spread over
turns). A connection's further frames that turn wait, undecoded, in its own
queue and go first next turn (a turn with frames held polls without
waiting), so a peer flooding the node (tells, asks, deeply nested or
malformed frames) delays every other peer by a bounded amount of work per
turn (~0.3 ms), not by its whole flood.
Each turn reads first (a frame of a connection with nothing held is handled
at once), then works on what is held. Once one connection has ``_PEER_HELD``
frames held, or all hold ``_HELD_BYTES`` bytes, the turn reads no more, and
no later turn reads until the connection whose frame passed the bound has
taken a frame of its own out of its queue (at its usual ``_PEER_STEPS`` per
turn): the rest stay in ZeroMQ, whose high-water mark then pushes back on
the sender; nothing is dropped, and what is held never grows past the bounds
by more than a frame. The ROUTER gives no choice of connection, so meanwhile
every peer's next frame waits too (for a flooder's batch: a few turns).

Hand-offs: a thread that waits for the GIL gets it only once the holder has
held it a switch interval (5 ms by default) without letting go, and this
thread lets go around every ZeroMQ call, which restarts that wait; under a
flood it would keep an actor it just gave a message waiting for many
milliseconds. So a turn that handed messages to other threads (or completed
asks) while work is still held sleeps ``_HANDOFF_PAUSE`` with the GIL
released, and flushes what they answered meanwhile; at most once per
``_HANDOFF_EVERY``, so a bulk stream into one actor (a hand-off every turn)
loses little throughput to it.

Traffic flows one way per socket: every message, replies included, goes out
through the sender's DEALER to the receiver's ROUTER, so each received frame
passes the same authentication check. The thread never blocks on a send and
never runs user code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, cast

import zmq
from zmq.utils.monitor import recv_monitor_message

from transport._allowlist import KeysWatch
from transport._codec import pack, unpack
from transport._errors import NodeDown
from transport._handshake import JoinWaiter
from transport._inbox import Inbox
from transport._outbox import Outbox
from transport._parts import NodeParts
from transport._protocol import NodeProtocol
from transport._reply import complete_ask
from transport._sockets import PeerLinks, make_router
from transport._subscribers import Subscribers

__all__ = ["IoLoop"]

log = logging.getLogger(__name__)

_BATCH = 500  # frames handled per socket per loop turn, so ticks and commands stay timely
_DRAIN_BUDGET = 0.05  # seconds of decoding per loop turn: heartbeats go out even under a flood
_PEER_STEPS = 64  # frames + batch envelopes of one ROUTER connection handled per loop turn
_PEER_HELD = 1000  # frames of one connection read but not handled yet: then reading pauses
_HELD_BYTES = 4 << 20  # bytes of frames held, all connections: then reading pauses too
_HANDOFF_PAUSE = 50e-6  # seconds the thread sleeps, GIL released, after waking other threads
_HANDOFF_EVERY = 1e-3  # seconds between two such pauses, at least (a bulk stream wakes per turn)
_MONITOR_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_DISCONNECTED
)


def _readable(socket: zmq.Socket[Any]) -> bool:
    """Whether a message waits on ``socket`` (asked without raising ``zmq.Again``)."""
    return bool(cast(int, socket.get(zmq.EVENTS)) & zmq.POLLIN)


class IoLoop:
    """The I/O thread of one Transport and the API to command it. See the module docstring.

    Args:
        node: the parts this node's threads share.
        listen: the endpoint the ROUTER binds, or None (a node that only delivers locally).
        context: the transport's ZeroMQ context.
        inbox: where received tells and asks go (handed to the protocol).
        subscribers: who hears of member changes (handed to the protocol).
    """

    def __init__(
        self,
        node: NodeParts,
        *,
        listen: str | None,
        context: zmq.Context[Any],
        inbox: Inbox,
        subscribers: Subscribers,
    ) -> None:
        name = node.name
        self._node = node
        self._name = name
        self._listen = listen
        self._settings = node.settings
        self._context = context
        self._command_endpoint = f"inproc://actorflow-io-{name}-{id(self):x}"
        self.thread = threading.Thread(target=self._run, name=f"actorflow-io-{name}", daemon=True)
        self._started = threading.Event()
        self._start_error: OSError | None = None
        self._push: zmq.Socket[Any] | None = None
        self._push_lock = threading.Lock()
        self._links = PeerLinks(context, node.settings, node.security, node.counters)
        self.outbox = Outbox(node, self._links, self.thread)
        self.protocol = NodeProtocol(
            node, links=self._links, outbox=self.outbox, inbox=inbox, subscribers=subscribers
        )
        # I/O thread only: per ROUTER connection, what was read past its budget: frames
        # (parts) not decoded yet, and at the head possibly a batch being handled
        self._held: dict[bytes, deque[list[Any] | Iterator[None]]] = {}
        self._held_bytes = 0  # payload bytes of the frames held (not of batches begun)
        self._popped = 0  # held frames taken out of their queues so far
        # connections read past a bound that have not taken a frame out of their
        # queue since: while there is one, no turn reads (see the module docstring)
        self._owed: set[bytes] = set()
        self._next_pause = 0.0  # monotonic: no hand-off pause before then

    # -- API side (any thread) ---------------------------------------------

    @property
    def held_bytes(self) -> int:
        """Bytes of received frames not handled yet (any thread: one int read)."""
        return self._held_bytes

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
        self.outbox.serve()

    def join(self, token: int, seeds: Sequence[tuple[str | None, str]]) -> JoinWaiter:
        """Say hello to ``seeds`` until one answers; the waiter wakes on the first welcome
        or refusal.

        Raises:
            NodeDown: the I/O thread is not running.
        """
        done = self.protocol.handshakes.begin_join(token)
        if not self._command(b"join", token.to_bytes(8, "big"), pack([list(s) for s in seeds])):
            self.protocol.handshakes.forget_join(token)
            raise NodeDown("cannot join: the transport's I/O thread is not running")
        return done

    def readvertise(self, token: int) -> threading.Event:
        """Have the I/O thread say hello again to every live peer (capabilities changed);
        the event is set once they all answered (or were given up on)."""
        done = self.protocol.handshakes.begin_advertise(token)
        if not self._command(b"advertise", token.to_bytes(8, "big")):
            done.set()
        return done

    def cancel_join(self, token: int) -> None:
        self.protocol.handshakes.forget_join(token)
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
        if stopped:  # never under a live thread's poll
            self.outbox.close()
        return stopped

    def _command(self, *parts: bytes) -> bool:
        with self._push_lock:
            if self._push is None or not self.outbox.running:
                return False
            try:
                self._push.send_multipart(parts, zmq.NOBLOCK)
            except zmq.Again:
                self._node.counters.dropped("outbox_full")
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
                router = make_router(self._context, self._settings, self._node.security)
                router.bind(self._listen)
                self._links.attach_router(router)
                self.protocol.bound_address = router.getsockopt_string(zmq.LAST_ENDPOINT)
                self._node.membership.self_address = self.protocol.bound_address
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
            self.outbox.shut()
            self._links.close_all()
            if router is not None and monitor is not None:
                router.disable_monitor()
                monitor.close(linger=0)
            if router is not None:
                router.close()
            commands.close(linger=0)
            for entry in self._node.pending.take_all():
                complete_ask(entry.future, False, NodeDown("transport closed"))

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
        outbox = self.outbox
        wakeup_fd = outbox.fd
        poller.register(wakeup_fd, zmq.POLLIN)
        poll_ms = max(1, int(self._settings.check_interval * 1000))
        now = self._node.now
        watch = KeysWatch(self._node.security, self._settings.keys_poll_interval, now())
        while True:
            ready = dict(poller.poll(0 if self._held else outbox.poll_timeout(poll_ms)))
            if wakeup_fd in ready:
                outbox.clear_wakeup()  # before the flush: a later post sets it again
            if commands in ready and self._drain_commands(commands):
                return
            outbox.flush()
            if router is not None and (router in ready or self._held):
                self._drain_router(router)
            if monitor is not None and monitor in ready:
                self._drain_monitor(monitor)
            moment = now()
            self.protocol.tick(moment)
            watch.tick(moment)
            if outbox.queued:  # answers given this turn (and what producers added): now
                outbox.flush()

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
            elif verb == b"advertise":
                self.protocol.readvertise(int.from_bytes(parts[1], "big"))
            elif verb == b"join_cancel":
                self.protocol.end_join(int.from_bytes(parts[1], "big"))
            elif verb == b"stop":
                return True
        return False

    def _drain_router(self, router: zmq.Socket[Any]) -> None:
        """Hand the waiting [routing id, payload] messages to the protocol, as many as
        ``_BATCH``, ``_DRAIN_BUDGET`` and each connection's ``_PEER_STEPS`` allow:
        first the frames just arrived (a connection with nothing held is served at
        once), then what was held back from earlier turns, connection by connection
        (see the module docstring for the bounds and the hand-offs).
        """
        budget_end = time.monotonic() + _DRAIN_BUDGET
        spent: dict[bytes, int] = {}
        held = self._held
        handoffs = self.protocol.handoffs
        if not self._owed:
            self._read(router, spent, budget_end)
        if not held:
            return
        handoffs = self._hand_over(handoffs)
        for connection in list(held):
            queue = held[connection]
            popped = self._popped
            allowance = _PEER_STEPS - spent.get(connection, 0)
            if allowance > 0:
                self._work(queue, allowance)
            if self._popped != popped or not queue:
                self._owed.discard(connection)  # a frame of its own went out: paid
            if not queue:
                del held[connection]
            if time.monotonic() > budget_end:
                break
        if held:
            self._hand_over(handoffs)

    def _read(self, router: zmq.Socket[Any], spent: dict[bytes, int], budget_end: float) -> None:
        """Read frames until none wait, a bound is reached or the turn's time is up.

        Two ``recv`` calls and a look at ``EVENTS`` before the next message cost a
        fraction of ``recv_multipart`` (which reads ``RCVMORE`` per part) and of the
        ``zmq.Again`` that would end the loop; this runs right after a delivery,
        while the woken actor or asker waits for the GIL.
        """
        secured = self._node.security is not None
        recv = router.recv
        for _ in range(_BATCH):
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
                parts: list[Any] = [frame]
                while frame.more:  # the rest of a message is there already
                    frame = recv(zmq.NOBLOCK, copy=False)
                    parts.append(frame)
            except zmq.Again:
                break
            if not secured and len(parts) == 2:
                parts[1] = frame.bytes  # plaintext: no User-Id to read, plain bytes
            if self._take(parts[0].bytes, parts, spent):
                break  # read no more: ZeroMQ holds the rest (back-pressure)
            if time.monotonic() > budget_end or not _readable(router):
                break

    def _hand_over(self, handoffs: int) -> int:
        """If messages went to other threads since the protocol's count was ``handoffs``,
        let them take the GIL and send what they answered (see "Hand-offs"); the count now."""
        if self.protocol.handoffs != handoffs:
            moment = time.monotonic()
            if moment >= self._next_pause:
                self._next_pause = moment + _HANDOFF_EVERY
                time.sleep(_HANDOFF_PAUSE)
                self.outbox.flush()
        return self.protocol.handoffs

    def _take(self, connection: bytes, parts: list[Any], spent: dict[bytes, int]) -> bool:
        """A frame just read: handled now if its connection has steps left this turn and
        nothing held, else held. True when reading must pause: that connection holds
        ``_PEER_HELD`` frames, or all hold ``_HELD_BYTES`` (it is then owed a frame out)."""
        held = self._held
        queue = held.get(connection)
        used = spent.get(connection, 0)
        if queue is None and used >= _PEER_STEPS:
            queue = held[connection] = deque()
        if queue is not None:
            queue.append(parts)
            self._held_bytes += len(parts[-1])
            if len(queue) < _PEER_HELD and self._held_bytes < _HELD_BYTES:
                return False
            self._owed.add(connection)
            return True
        self._node.counters.received()  # counted as handed to the protocol, not as read
        rest = self.protocol.on_frames(parts)
        used += 1
        if rest is not None:  # a batch: as many of its envelopes as the budget allows
            queue = deque((rest,))
            used += self._work(queue, _PEER_STEPS - used)
            if queue:
                held[connection] = queue
        spent[connection] = used
        return False

    def _work(self, queue: deque[list[Any] | Iterator[None]], allowance: int) -> int:
        """Handle ``queue``'s head onwards, at most ``allowance`` steps (at least one);
        returns the steps taken. A batch not finished stays at the head."""
        on_frames = self.protocol.on_frames
        steps = 0
        while queue:
            head = queue[0]
            if isinstance(head, list):
                queue.popleft()
                self._popped += 1
                self._held_bytes -= len(head[-1])
                steps += 1
                self._node.counters.received()
                rest = on_frames(head)
                if rest is None:
                    if steps >= allowance:
                        return steps
                    continue
                queue.appendleft(rest)
                head = rest
            try:
                while steps < allowance:
                    next(head)
                    steps += 1
            except StopIteration:
                queue.popleft()
                continue
            return steps
        return steps

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
