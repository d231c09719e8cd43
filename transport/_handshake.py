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

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from transport._capabilities import Capabilities, capabilities_to_wire
from transport._envelope import ROLE_MEMBER, Envelope, Kind, encode_envelope
from transport._errors import JoinRefused, NameInUse, NodeDown, RemoteError
from transport._join_causes import JoinCause, join_cause
from transport._security import Security, check_endpoint
from transport._settings import TransportSettings
from transport._sockets import PeerLinks

__all__ = ["MAX_PROBES", "Handshakes", "JoinWaiter"]

log = logging.getLogger(__name__)

MAX_PROBES = 64
PROBE_TIMEOUT = 5.0
MAX_REFUSALS = 8
REFUSAL_LINGER = 5.0


@dataclass(slots=True)
class _JoinAttempt:
    seeds: list[tuple[str | None, str]]
    next_hello: float
    causes: dict[int, JoinCause] = field(default_factory=dict)  # seed index -> latest


def seed_label(seed: tuple[str | None, str]) -> str:
    """How a seed is named in messages: ``name@address`` or the address."""
    return f"{seed[0]}@{seed[1]}" if seed[0] else seed[1]


class JoinWaiter:
    """What ``Transport.join`` waits on: ``done`` is set on a welcome or a refusal;
    ``settled`` once the probes of the members the welcome named ended too (answered,
    refused or timed out), so ``join`` returns knowing the cluster's live members."""

    __slots__ = ("awaiting", "causes", "done", "failure", "refusal", "settled")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.settled = threading.Event()
        self.refusal: str | None = None  # why a seed refused the join, if it did
        self.awaiting: set[int] = set()  # probe hello ids still in flight (I/O thread)
        self.failure: str | None = None  # every seed failed the handshake: why
        # seed label -> what its link last showed (replaced whole by the I/O thread)
        self.causes: dict[str, str] = {}

    def raise_unless_welcomed(
        self, node: str, seeds: Sequence[str], timeout: float, *, answered: bool
    ) -> None:
        """Raise the error of a join that was not welcomed (see ``Transport.join``)."""
        if not answered:
            seen = "; ".join(f"{seed}: {cause}" for seed, cause in self.causes.items())
            raise NodeDown(
                f"no seed answered within {timeout}s: {list(seeds)}"
                + (f" ({seen})" if seen else " (their connections showed nothing)")
            )
        if self.failure is not None:
            raise JoinRefused(f"cannot join as {node!r}: {self.failure}")
        if self.refusal is not None:
            raise NameInUse(f"cannot join as {node!r}: {self.refusal}")


class Handshakes:
    """The hellos this node has in flight. See the module docstring.

    Args:
        name: this node's name.
        incarnation: this process's incarnation (sent in every hello).
        settings: timing and limits.
        links: the peers' DEALERs (probe and refusal links are opened here).
        ids: message ids of this transport.
        security: CURVE keys and allowlist, or None (plaintext).
    """

    def __init__(
        self,
        name: str,
        incarnation: int,
        settings: TransportSettings,
        links: PeerLinks,
        ids: Iterator[int],
        capabilities: Capabilities | None = None,
        security: Security | None = None,
    ) -> None:
        self._name = name
        self._capabilities = capabilities or Capabilities()
        self._security = security
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
        # re-advertisements: token -> event (API threads register under _join_lock), and
        # hello id -> (token, expiry) of the repeated hellos not yet answered (I/O thread)
        self._advert_waiters: dict[int, tuple[threading.Event, set[int]]] = {}
        self._advert_hellos: dict[int, tuple[int, float]] = {}

    def hello(self, bound_address: str) -> tuple[int, bytes]:
        """A fresh hello frame of this node and its message id."""
        message_id = next(self._ids)
        body: dict[str, object] = {
            "role": ROLE_MEMBER,
            "address": bound_address,
            "incarnation": self._incarnation,
        }
        own = self._capabilities.own()
        if own:
            body["capabilities"] = capabilities_to_wire(own)
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
            self._links.open(f"/seed/{token}/{index}", address, seed_name, monitor=True)
        self._joins[token] = _JoinAttempt(seeds, next_hello=now)
        self.retry_joins(now, bound)

    def retry_joins(self, now: float, bound: str | None) -> None:
        if bound is None:
            return
        for token, attempt in list(self._joins.items()):
            self._watch_seeds(token, attempt)
        for token, attempt in self._joins.items():
            if now < attempt.next_hello:
                continue
            attempt.next_hello = now + self._settings.join_retry_interval
            for index in range(len(attempt.seeds)):
                message_id, frame = self.hello(bound)
                self._join_hellos[message_id] = token
                self._links.send(f"/seed/{token}/{index}", frame)

    def _watch_seeds(self, token: int, attempt: _JoinAttempt) -> None:
        """Read the seed links' monitors: log each new cause, end the join when every
        seed failed the handshake (retrying cannot help)."""
        changed = False
        for index, seed in enumerate(attempt.seeds):
            for event, value in self._links.events(f"/seed/{token}/{index}"):
                cause = join_cause(event, value, node=self._name, seed=seed[0])
                old = attempt.causes.get(index)
                if cause is None or cause == old or (old is not None and old.final):
                    continue  # a final cause stays (a disconnect follows a refusal)
                attempt.causes[index] = cause
                changed = True
                level = logging.WARNING if cause.final or "refused" in cause.text else logging.INFO
                log.log(
                    level, "%s: joining through %s: %s", self._name, seed_label(seed), cause.text
                )
        if not changed:
            return
        causes = {seed_label(attempt.seeds[i]): c.text for i, c in attempt.causes.items()}
        with self._join_lock:
            waiter = self._join_waiters.get(token)
        if waiter is not None:
            waiter.causes = causes
        finals = [attempt.causes.get(i) for i in range(len(attempt.seeds))]
        if all(c is not None and c.final for c in finals):
            failure = "; ".join(f"seed {label}: {text}" for label, text in causes.items())
            self.end_join(token, failure=failure)

    def join_token(self, correlation_id: int) -> int | None:
        """The join a ``members`` or ``error`` answering hello ``correlation_id`` belongs to."""
        return self._join_hellos.get(correlation_id)

    def end_join(
        self,
        token: int,
        *,
        succeeded: bool = False,
        refusal: str | None = None,
        failure: str | None = None,
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
        if waiter is not None and failure is not None:
            waiter.failure = failure
            waiter.settled.set()
            waiter.done.set()
        elif waiter is not None and (succeeded or refusal is not None):
            waiter.refusal = refusal
            waiter.awaiting = {message_id for message_id in probes if message_id in self._probes}
            if waiter.awaiting:
                self._settling.append(waiter)
            else:
                waiter.settled.set()
            waiter.done.set()

    # -- re-advertisements ----------------------------------------------------------

    def begin_advertise(self, token: int) -> threading.Event:
        """(API thread) Register a re-advertisement; the event is set once every live peer
        answered the repeated hello (so it knows this node's new capabilities)."""
        done = threading.Event()
        with self._join_lock:
            self._advert_waiters[token] = (done, set())
        return done

    def advertise(self, token: int, peers: list[str], now: float, bound: str) -> None:
        """Say hello again to ``peers``: a repeated hello refreshes what they know of us."""
        with self._join_lock:
            waiter = self._advert_waiters.get(token)
        for peer in peers:
            message_id, frame = self.hello(bound)
            if waiter is not None:
                waiter[1].add(message_id)
                self._advert_hellos[message_id] = (token, now + PROBE_TIMEOUT)
            self._links.send(peer, frame)
        if waiter is not None and not waiter[1]:
            self._advertised_all(token)

    def advertised(self, correlation_id: int) -> None:
        """A ``members`` answering ``correlation_id``: if it answers a repeated hello, note it."""
        entry = self._advert_hellos.pop(correlation_id, None)
        if entry is None:
            return
        with self._join_lock:
            waiter = self._advert_waiters.get(entry[0])
        if waiter is not None:
            waiter[1].discard(correlation_id)
            if not waiter[1]:
                self._advertised_all(entry[0])

    def _advertised_all(self, token: int) -> None:
        with self._join_lock:
            waiter = self._advert_waiters.pop(token, None)
        if waiter is not None:
            waiter[0].set()

    # -- probes of gossiped peers ---------------------------------------------------

    def hint(
        self,
        entries: list[list[Any]],
        now: float,
        bound: str,
        is_member: Callable[[str], bool],
        drop: Callable[[str, str], None],
    ) -> frozenset[int]:
        """Probe the unknown ``up`` members that gossip (``[name, address, status,
        incarnation]`` entries) named; the probes' hello ids. Refused ones go to ``drop``."""
        probes: set[int] = set()
        secured = self._security is not None
        for name, address, status, *_ in entries:
            if name == self._name or status != "up" or is_member(name):
                continue
            if self._security is not None and self._security.public_key_of(name) is None:
                drop("refused_member", f"gossiped node {name!r} has no allowlisted key")
                continue
            try:
                check_endpoint(
                    address, what="member address", secured=secured, allow_plaintext=True
                )
            except ValueError as exc:
                drop("refused_member", str(exc))
                continue
            probe = self.probe(name, address, now, bound)
            if probe is None:
                drop("probe_limit", f"too many gossiped nodes to probe; {name!r} skipped")
                break
            probes.add(probe)
        return frozenset(probes)

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

    def is_probe(self, correlation_id: int, sender: str) -> bool:
        """True if ``correlation_id`` is our probe hello to ``sender`` (still in flight)."""
        probe = self._probes.get(correlation_id)
        return probe is not None and probe[0] == sender

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

    def refuse(
        self, hello: Envelope, reason: str, now: float, drop: Callable[[str, str], None]
    ) -> None:
        """Answer a member's ``hello`` naming a live member with an ``error`` sent to the
        hello's address (``drop``: counts it, or a bad address)."""
        address = hello.body["address"]
        try:
            check_endpoint(
                address,
                what="hello address",
                secured=self._security is not None,
                allow_plaintext=True,
            )
        except ValueError as exc:
            drop("refused_hello", f"hello from {hello.sender!r}: {exc}")
            return
        drop("name_in_use", f"hello from {hello.sender!r} at {address}: {reason}")
        error = RemoteError("runtime.NameInUse", reason, "", self._name)  # its public name
        envelope = Envelope(Kind.ERROR, next(self._ids), hello.message_id, self._name, "", error)
        self._send_refusal(
            address, hello.sender, encode_envelope(envelope, self._settings.limits), now
        )

    def _send_refusal(self, address: str, server_name: str, frame: bytes, now: float) -> None:
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
        for message_id, (token, expiry) in list(self._advert_hellos.items()):
            if now >= expiry:  # a peer that never answered: stop waiting for it
                del self._advert_hellos[message_id]
                self._advertised_all(token)
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
