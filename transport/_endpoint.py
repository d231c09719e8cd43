"""``Transport``: one node's endpoint in the cluster, the API the runtime programs against.

Threads of a started Transport (all named, all ended by ``close``):

- ``actorflow-io-<node>``: owns every socket (see ``_io``) and sends what
  the outbox queued (see ``_outbox``);
- ``actorflow-dispatch-<node>``: calls ``MessageHandler.deliver``, in order
  per sender, senders served round-robin (``_fair``);
- ``actorflow-notify-<node>``: completes ask futures and runs ``subscribe``
  callbacks (done-callbacks and member callbacks must not block);
- ``actorflow-zap-<node>``: the ZAP authenticator, when CURVE is on.

Local delivery (``target.node`` is this node) skips sockets and codec: the
message goes straight to the dispatch worker, and answers and errors follow
the same rules as remote ones, so the runtime can treat every ref alike.

Flow control (remote ``tell`` and ``ask``): a message is never dropped
because a peer is slow. Frames wait in the I/O thread's outbox and, when the
peer's DEALER is at its high-water mark, in a per-peer backlog (in order).
When those hold ``settings.outbox_size`` frames, ``tell`` and ``ask`` *block
the calling thread* until there is room, at most ``settings.send_timeout``
seconds, then raise ``OutboxFull`` (a ``NodeDown``; nothing was sent). The
I/O thread itself never waits. Answers to asks are queued without that bound
(they are bounded by the asker's ``max_pending_asks``), so an actor answering
cannot be blocked. A message can still be lost when its peer goes down or
leaves with frames queued to it, or when the receiving node's dispatch queue
is full (counted as ``dispatch_full``): the transport confirms no delivery.
A local ``tell`` waits for room in a full dispatch queue the same way (not on
the dispatch thread itself, which would wait for itself) and raises
``OutboxFull`` when there is none.
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import zmq

from transport._address import Address
from transport._capabilities import CapabilitySet
from transport._envelope import Envelope, Kind, encode_envelope, validate_node_name
from transport._errors import AskTimeout, NodeDown, OutboxFull
from transport._fair import FairDispatcher
from transport._inbox import Inbox
from transport._io import IoLoop
from transport._membership import Member, MemberEvent, Membership
from transport._parts import NodeParts
from transport._reply import (
    AskFuture,
    CallbackReply,
    MessageHandler,
    PendingAsk,
    PendingAsks,
    Reply,
    complete_ask,
    error_from_wire,
    error_to_wire,
    new_id_counter,
)
from transport._security import Security, check_endpoint, parse_seed, start_authenticator
from transport._settings import DEFAULT_SETTINGS, TransportSettings
from transport._stats import Counters, TransportStats
from transport._subscribers import Subscribers
from transport._workers import SerialWorker

__all__ = ["Transport"]

log = logging.getLogger(__name__)


class Transport:
    """A node's endpoint: listens, joins a cluster, sends tells and asks, watches members.

    Args:
        name: this node's name (1-128 chars, no '/', '@' or spaces).
        listen: endpoint to bind, e.g. ``"tcp://127.0.0.1:0"`` (port 0 picks a
            free port; ``address`` reports the real one), or None for a node
            that only delivers locally.
        handler: delivers tells and asks addressed to this node.
        security: CURVE keys and allowlist (``load_security``); None is plaintext.
        allow_plaintext: permit plaintext, on loopback endpoints only.
        settings: timing and bounds.
        now: monotonic clock (injectable for tests).

    Raises:
        ValueError: an invalid name or endpoint, or plaintext that was not
            explicitly allowed or would leave this host (checked before any bind).
    """

    def __init__(
        self,
        name: str,
        *,
        listen: str | None,
        handler: MessageHandler,
        security: Security | None = None,
        allow_plaintext: bool = False,
        settings: TransportSettings = DEFAULT_SETTINGS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = validate_node_name(name)
        if listen is not None:
            check_endpoint(
                listen, what="listen", secured=security is not None, allow_plaintext=allow_plaintext
            )
        if security is not None and security.name != name:
            raise ValueError(f"security keys belong to node {security.name!r}, not {name!r}")
        self._listen = listen
        self._security = security
        self._allow_plaintext = allow_plaintext
        self._settings = settings
        self._now = now
        self._ids = new_id_counter()
        self._state_lock = threading.Lock()
        self._state = "new"  # new -> running -> closed
        self._counters = Counters()
        self._pending = PendingAsks(settings.max_pending_asks)
        self.incarnation = secrets.randbits(62) + 1  # this process's identity under ``name``
        self._membership = Membership(
            name,
            None,
            settings.max_members,
            incarnation=self.incarnation,
            forget_after=settings.forget_after,
        )
        self._parts = NodeParts(
            name=name,
            settings=settings,
            security=security,
            now=now,
            ids=self._ids,
            membership=self._membership,
            pending=self._pending,
            counters=self._counters,
        )
        self._dispatcher = FairDispatcher(
            f"actorflow-dispatch-{name}",
            local=name,
            per_sender=settings.dispatch_queue_per_sender,
            total=settings.dispatch_queue_size,
        )
        self._inbox = Inbox(name, handler, self._dispatcher, self._counters)
        self._notifier = SerialWorker(f"actorflow-notify-{name}")
        self._subscribers = Subscribers(self._notifier)
        self._context: zmq.Context[Any] | None = None
        self._authenticator: Any = None
        self._io: IoLoop | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 5.0) -> None:
        """Start the threads, the ZAP authenticator (before binding) and bind ``listen``.

        Raises:
            RuntimeError: already started or closed, or the authenticator or the
                I/O thread could not start (fail closed: nothing is left listening).
            OSError: ``listen`` could not be bound.
        """
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError(f"transport {self.name} was already started")
            self._state = "running"
        self._context = zmq.Context()
        try:
            if self._security is not None:
                self._authenticator = start_authenticator(
                    self._context, self._security, f"actorflow-zap-{self.name}"
                )
            self._io = IoLoop(
                self._parts,
                listen=self._listen,
                context=self._context,
                inbox=self._inbox,
                subscribers=self._subscribers,
            )
            # Answers the dispatch thread posts wake the I/O thread once per run of jobs.
            self._io.outbox.hold_wakeups(self._dispatcher.thread)
            self._dispatcher.after_jobs = self._io.outbox.release_wakeups
            self._dispatcher.start()
            self._notifier.start()
            self._io.start(timeout)
        except BaseException:
            self.close(timeout)
            raise

    @property
    def address(self) -> str | None:
        """The endpoint actually bound (the real port for ``:0``); None before start or unbound."""
        return self._io.bound_address if self._io is not None else None

    def close(self, timeout: float = 5.0) -> None:
        """Stop every thread and close every socket. Idempotent; bounded even if peers are dead.

        Asks still in flight fail with ``NodeDown("transport closed")``.
        """
        with self._state_lock:
            if self._state == "closed":
                return
            self._state = "closed"
        deadline = time.monotonic() + timeout
        io_stopped = self._io.stop(timeout) if self._io is not None else True
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._context is not None:
            if io_stopped:
                self._context.term()
            else:
                log.error("%s: I/O thread did not stop; leaving its context open", self.name)
        for entry in self._pending.take_all():
            complete_ask(entry.future, False, NodeDown("transport closed"))
        self._dispatcher.stop(max(0.1, deadline - time.monotonic()))
        self._notifier.stop(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> Transport:
        if self._state == "new":
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- membership ----------------------------------------------------------------

    def join(self, seeds: Sequence[str], *, timeout: float = 10.0) -> None:
        """Join the cluster through ``seeds`` and learn its members.

        Returns once a seed welcomed this node and the live members the welcome
        named answered this node's hello (or ``timeout`` ran out for them).

        A seed is ``"name@tcp://host:port"`` (required with CURVE: the name
        selects the server key) or ``"tcp://host:port"`` (plaintext only).

        Raises:
            ValueError: no ``listen`` endpoint, or a malformed or refused seed.
            NameInUse: a seed refused the join: a live member (another process,
                still answering probes) already uses this node's name.
            JoinRefused: every seed refused the CURVE handshake (at once; the message
                names each seed and the cause).
            NodeDown: no seed answered within ``timeout`` (hellos and connections are
                retried until then); says what each seed's connection last showed.
        """
        io = self._running_io()
        if self._listen is None:
            raise ValueError("join needs a listen endpoint: peers must be able to reach this node")
        secured, plaintext = self._security is not None, self._allow_plaintext
        parsed = [parse_seed(seed, secured=secured, allow_plaintext=plaintext) for seed in seeds]
        parsed = [(name, address) for name, address in parsed if address != self.address]
        if not parsed:
            return
        token = self._next_id()
        deadline = time.monotonic() + timeout
        waiter = io.join(token, parsed)
        answered = waiter.done.wait(timeout)
        if not answered:
            io.cancel_join(token)
        waiter.raise_unless_welcomed(self.name, seeds, timeout, answered=answered)
        # the members the welcome named are probed (gossip is only a hint): wait for them
        waiter.settled.wait(max(0.0, deadline - time.monotonic()))

    def members(self) -> dict[str, Member]:
        """Every known node, this one included (always ``up``), keyed by name."""
        return self._membership.snapshot()

    def advertise(self, capabilities: Mapping[str, Iterable[str]], timeout: float = 5.0) -> None:
        """Set what this node can do (kind -> names), sent in every hello from now on.

        A change while running is said to every live peer at once (a repeated hello);
        this waits (at most ``timeout``) until they all answered, so a peer placing
        work here right after sees the new set.
        """
        changed = self._parts.capabilities.set_own(capabilities)
        io = self._io
        if changed and io is not None and self._state == "running":
            io.readvertise(self._next_id()).wait(timeout)

    def capabilities(self, node: str) -> CapabilitySet:
        """What ``node`` advertised (kind -> names; empty if unknown or nothing), or ours."""
        if node == self.name:
            return self._parts.capabilities.own()
        return self._parts.capabilities.of(node, self._membership.incarnation(node))

    def subscribe(self, callback: Callable[[MemberEvent], None]) -> None:
        """Call ``callback(MemberEvent)`` on every up/down/left change, on the notify thread.

        Callbacks must return quickly; one that raises is logged and kept.
        """
        self._subscribers.add(callback)

    def leave(self, timeout: float = 5.0) -> None:
        """Tell every up peer this node leaves (they mark it ``left``, not ``down``).

        Waits up to ``timeout`` for their acknowledgements (sending no probes from
        the start: the peers that answered drop them); afterwards remote tells and
        asks raise ``NodeDown``. Call ``close`` next.
        """
        io = self._running_io()
        io.protocol.leaving.set()  # no more probes: those told first would drop them
        peers = self._membership.names("up")
        futures = [self._send_ask(peer, Kind.LEAVE, "", None, timeout) for peer in peers]
        concurrent.futures.wait(futures, timeout)
        io.protocol.left.set()

    # -- messaging -------------------------------------------------------------------

    def tell(self, target: Address, message: Any) -> None:
        """Send ``message`` to ``target``; delivery is not confirmed.

        Returns as soon as the message is queued; blocks only while the outbox
        is full (backpressure, see the module docstring).

        Raises:
            NodeDown: ``target.node`` is unknown, down or left (or this node left,
                or the transport's I/O thread has stopped).
            OutboxFull: no room in the outbox within ``settings.send_timeout``.
            ProtocolError: ``message`` cannot be encoded or is too large.
        """
        io = self._running_io()
        node = target.node
        if node == self.name:
            # The dispatch queue is this node's own outbox: the same backpressure applies.
            wait = self._settings.send_timeout
            if not self._inbox.submit(self.name, target.path, message, None, wait):
                if self._dispatcher.stopping:
                    raise NodeDown(f"{self.name} is closing; {target} not told")
                self._counters.dropped("dispatch_full", peer=self.name)
                raise OutboxFull(f"{self.name}: dispatch queue full; {target} not told")
            return
        self._check_reachable(node)
        envelope = Envelope(Kind.TELL, next(self._ids), 0, self.name, target.path, message)
        frame = encode_envelope(envelope, self._settings.limits)
        if not io.outbox.post(node, frame, self._settings.send_timeout):
            raise NodeDown(f"cannot send to {node}: the transport's I/O thread has stopped")

    def ask(
        self, target: Address, message: Any, *, timeout: float
    ) -> concurrent.futures.Future[Any]:
        """Send ``message`` to ``target`` and return a future for the answer.

        The future fails with ``ActorNotFound`` (no such actor), ``RemoteError``
        (the handler or actor failed; traceback text included), ``AskTimeout``
        (no answer within ``timeout`` seconds, or too many asks in flight),
        ``NodeDown`` (node unknown, down, left, or this transport closed) or
        ``ProtocolError`` (``message`` cannot be encoded).

        Raises:
            ValueError: ``timeout`` is not positive.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._running_io()
        if target.node == self.name:
            return self._ask_local(target.path, message, timeout)
        return self._send_ask(target.node, Kind.ASK, target.path, message, timeout)

    def stats(self) -> TransportStats:
        """A frozen snapshot: peers (and when last heard from), asks in flight, counters, drops."""
        frames_in, frames_out, dropped = self._counters.snapshot()
        peers = {name: m for name, m in self._membership.snapshot().items() if name != self.name}
        return TransportStats(
            node=self.name,
            address=self.address,
            peers=peers,
            in_flight_asks=len(self._pending),
            frames_in=frames_in,
            frames_out=frames_out,
            frames_dropped=dropped,
            dropped_by_peer=self._counters.by_peer(),
            log_suppressed=self._counters.log_suppressed(),
            dispatch_queue_depth=self._dispatcher.depth(),
            outbox_backlog=self._io.outbox.held() if self._io is not None else 0,
            held_bytes=self._io.held_bytes if self._io is not None else 0,
            clients=self._io.protocol.client_count if self._io is not None else 0,
            shed_peers=self._io.protocol.shed_peers if self._io is not None else (),
        )

    # -- internals -----------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def _running_io(self) -> IoLoop:
        if self._state != "running" or self._io is None:
            raise RuntimeError(f"transport {self.name} is not running (state {self._state})")
        return self._io

    def _check_reachable(self, node: str) -> None:
        status = self._membership.status(node)
        if status != "up":
            raise NodeDown(f"node {node} is {status or 'unknown'}")
        if self._io is not None and self._io.protocol.left.is_set():
            raise NodeDown(f"this node ({self.name}) has left the cluster")

    def _send_ask(
        self, node: str, kind: Kind, path: str, message: Any, timeout: float
    ) -> concurrent.futures.Future[Any]:
        future = self._new_future()
        try:
            self._check_reachable(node)
            message_id = self._next_id()
            frame = encode_envelope(
                Envelope(kind, message_id, 0, self.name, path, message), self._settings.limits
            )
        except Exception as exc:  # noqa: BLE001 - every failure belongs on the future
            future.set_exception(exc)
            return future
        if not self._register(message_id, node, future, timeout):
            return future
        io = self._io
        try:
            posted = io is not None and io.outbox.post(node, frame, self._settings.send_timeout)
        except OutboxFull as exc:
            self._pending.discard(message_id)
            future.set_exception(exc)
            return future
        if not posted:
            self._pending.discard(message_id)
            future.set_exception(NodeDown(f"cannot send to {node}: transport outbox unavailable"))
        return future

    def _ask_local(self, path: str, message: Any, timeout: float) -> concurrent.futures.Future[Any]:
        future = self._new_future()
        message_id = self._next_id()
        if not self._register(message_id, self.name, future, timeout):
            return future
        reply = CallbackReply(partial(self._answer_local, message_id))
        self._deliver_local(path, message, reply)
        return future

    def _register(
        self, message_id: int, node: str, future: concurrent.futures.Future[Any], timeout: float
    ) -> bool:
        entry = PendingAsk(future, node, self._now() + timeout)
        if self._pending.add(message_id, entry):
            return True
        future.set_exception(
            AskTimeout(f"not sent: {self._settings.max_pending_asks} asks already in flight")
        )
        return False

    def _new_future(self) -> concurrent.futures.Future[Any]:
        future = AskFuture(self._notifier)
        future.set_running_or_notify_cancel()  # callers cannot cancel; we always complete it
        return future

    def _answer_local(self, message_id: int, ok: bool, value: Any) -> None:
        entry = self._pending.discard(message_id)
        if entry is None:
            return  # timed out or closed already
        if ok:
            complete_ask(entry.future, True, value)
        else:
            complete_ask(entry.future, False, error_from_wire(error_to_wire(value, self.name)))

    def _deliver_local(self, path: str, message: Any, reply: Reply | None) -> None:
        if not self._inbox.submit(self.name, path, message, reply):
            self._counters.dropped("dispatch_full", peer=self.name)
            if reply is not None:
                reply.error(NodeDown(f"{self.name}: dispatch queue full"))
