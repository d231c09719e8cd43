"""Hello handshakes in flight: joins through seeds, probes of gossiped peers, refusals.

A peer enters the member table only by a completed hello handshake (see
``_membership``): it said hello to this node, or it answered a hello of this
node with its member list. ``Handshakes`` tracks the hellos this node sent:

- *joins*: hellos to the seeds of ``Transport.join`` (retried until a seed
  answers with ``members``, the welcome, or refuses with an ``error``, e.g.
  the name is in use by a live member);
- *probes*: one hello to a peer that gossip named but this node does not know
  (gossip is only a hint); the peer is admitted when it answers. At most
  ``MAX_PROBES`` at once, each forgotten after ``PROBE_TIMEOUT`` s, so a
  gossip frame naming hundreds of made-up nodes costs a bounded number of
  sockets and adds nothing to the table;
- *refusals*: links to a refused joiner's address (not its name: the name
  belongs to the live member), kept ``REFUSAL_LINGER`` s so the refusal is
  delivered, at most ``MAX_REFUSALS`` at once.

Thread: I/O thread, except ``begin_join``/``forget_join`` (API threads; a lock
guards the waiters).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from transport._envelope import ROLE_MEMBER, Envelope, Kind, encode_envelope
from transport._settings import TransportSettings
from transport._sockets import PeerLinks

__all__ = ["MAX_PROBES", "Handshakes", "JoinWaiter"]

MAX_PROBES = 64
PROBE_TIMEOUT = 5.0
MAX_REFUSALS = 8
REFUSAL_LINGER = 5.0


@dataclass(slots=True)
class _JoinAttempt:
    seeds: list[tuple[str | None, str]]
    next_hello: float


class JoinWaiter:
    """What ``Transport.join`` waits on: ``done`` is set on a welcome or a refusal;
    ``settled`` once the probes of the members the welcome named ended too (answered,
    refused or timed out), so ``join`` returns knowing the cluster's live members."""

    __slots__ = ("awaiting", "done", "refusal", "settled")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.settled = threading.Event()
        self.refusal: str | None = None  # why a seed refused the join, if it did
        self.awaiting: set[int] = set()  # probe hello ids still in flight (I/O thread)


class Handshakes:
    """The hellos this node has in flight. See the module docstring.

    Args:
        name: this node's name.
        incarnation: this process's incarnation (sent in every hello).
        settings: timing and limits.
        links: the peers' DEALERs (probe and refusal links are opened here).
        ids: message ids of this transport.
    """

    def __init__(
        self,
        name: str,
        incarnation: int,
        settings: TransportSettings,
        links: PeerLinks,
        ids: Iterator[int],
    ) -> None:
        self._name = name
        self._incarnation = incarnation
        self._settings = settings
        self._links = links
        self._ids = ids
        self._joins: dict[int, _JoinAttempt] = {}
        self._join_hellos: dict[int, int] = {}  # hello message id -> join token
        self._join_waiters: dict[int, JoinWaiter] = {}
        self._join_lock = threading.Lock()
        self._probes: dict[int, tuple[str, float]] = {}  # hello id -> (peer, expiry)
        self._probing: dict[str, int] = {}  # peer -> hello id
        self._refusals: dict[str, float] = {}  # link key -> expiry (oldest first)
        self._settling: list[JoinWaiter] = []  # welcomed joins waiting for their probes

    def hello(self, bound_address: str) -> tuple[int, bytes]:
        """A fresh hello frame of this node and its message id."""
        message_id = next(self._ids)
        body = {"role": ROLE_MEMBER, "address": bound_address, "incarnation": self._incarnation}
        envelope = Envelope(Kind.HELLO, message_id, 0, self._name, "", body)
        return message_id, encode_envelope(envelope, self._settings.limits)

    # -- joins ---------------------------------------------------------------------

    def begin_join(self, token: int) -> JoinWaiter:
        """(API thread) Register a join; its waiter wakes on a welcome or a refusal."""
        waiter = JoinWaiter()
        with self._join_lock:
            self._join_waiters[token] = waiter
        return waiter

    def forget_join(self, token: int) -> None:
        """(API thread) The joiner gave up waiting."""
        with self._join_lock:
            self._join_waiters.pop(token, None)

    def start_join(
        self, token: int, seeds: list[tuple[str | None, str]], now: float, bound: str | None
    ) -> None:
        """Open links to the seeds and say hello to each (retried until answered)."""
        for index, (seed_name, address) in enumerate(seeds):
            self._links.open(f"/seed/{token}/{index}", address, seed_name)
        self._joins[token] = _JoinAttempt(seeds, next_hello=now)
        self.retry_joins(now, bound)

    def retry_joins(self, now: float, bound: str | None) -> None:
        if bound is None:
            return
        for token, attempt in self._joins.items():
            if now < attempt.next_hello:
                continue
            attempt.next_hello = now + self._settings.join_retry_interval
            for index in range(len(attempt.seeds)):
                message_id, frame = self.hello(bound)
                self._join_hellos[message_id] = token
                self._links.send(f"/seed/{token}/{index}", frame)

    def join_token(self, correlation_id: int) -> int | None:
        """The join a ``members`` or ``error`` answering hello ``correlation_id`` belongs to."""
        return self._join_hellos.get(correlation_id)

    def end_join(
        self,
        token: int,
        *,
        succeeded: bool = False,
        refusal: str | None = None,
        probes: frozenset[int] = frozenset(),
    ) -> None:
        """Close the seed links of a join; wake its waiter if a seed welcomed or refused us
        (``probes``: the hellos to the members the welcome named)."""
        attempt = self._joins.pop(token, None)
        if attempt is not None:
            for index in range(len(attempt.seeds)):
                self._links.close(f"/seed/{token}/{index}")
        for message_id in [key for key, value in self._join_hellos.items() if value == token]:
            del self._join_hellos[message_id]
        with self._join_lock:
            waiter = self._join_waiters.pop(token, None)
        if waiter is not None and (succeeded or refusal is not None):
            waiter.refusal = refusal
            waiter.awaiting = {message_id for message_id in probes if message_id in self._probes}
            if waiter.awaiting:
                self._settling.append(waiter)
            else:
                waiter.settled.set()
            waiter.done.set()

    # -- probes of gossiped peers ---------------------------------------------------

    def probe(self, peer: str, address: str, now: float, bound: str) -> int | None:
        """Say hello to ``peer`` (named by gossip) unless a probe is in flight; the probe's
        hello id (0 if no link could be made), or None when ``MAX_PROBES`` are in flight."""
        if peer in self._probing:
            return self._probing[peer]
        if len(self._probes) >= MAX_PROBES:
            return None
        if not self._links.open(peer, address, peer):
            return 0
        message_id, frame = self.hello(bound)
        self._probes[message_id] = (peer, now + PROBE_TIMEOUT)
        self._probing[peer] = message_id
        self._links.send(peer, frame)
        return message_id

    def probed(self, correlation_id: int, sender: str) -> bool:
        """True (and the probe ends) if ``sender`` answers our probe hello ``correlation_id``."""
        probe = self._probes.get(correlation_id)
        if probe is None or probe[0] != sender:
            return False
        self._end_probe(correlation_id)
        return True

    def _end_probe(self, message_id: int) -> None:
        peer, _ = self._probes.pop(message_id)
        del self._probing[peer]
        for waiter in list(self._settling):
            waiter.awaiting.discard(message_id)
            if not waiter.awaiting:
                self._settling.remove(waiter)
                waiter.settled.set()

    # -- refusals -------------------------------------------------------------------

    def refuse(self, address: str, server_name: str, frame: bytes, now: float) -> None:
        """Send ``frame`` (an ``error`` answering a hello) to a refused joiner's ``address``."""
        key = f"/refused/{address}"
        if key not in self._refusals:
            if len(self._refusals) >= MAX_REFUSALS:
                oldest = next(iter(self._refusals))
                del self._refusals[oldest]
                self._links.close(oldest)
            if not self._links.open(key, address, server_name):
                return
        self._refusals.pop(key, None)
        self._refusals[key] = now + REFUSAL_LINGER
        self._links.send(key, frame)

    # -- expiry ----------------------------------------------------------------------

    def expire(self, now: float, is_member: Callable[[str], bool]) -> None:
        """Close the links of probes nobody answered and of refusals delivered long ago."""
        for message_id, (peer, expiry) in list(self._probes.items()):
            if now >= expiry:
                self._end_probe(message_id)
                if not is_member(peer):
                    self._links.close(peer)
        for key, expiry in list(self._refusals.items()):
            if now < expiry:
                break
            del self._refusals[key]
            self._links.close(key)
