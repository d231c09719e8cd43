"""Introspection: a frozen snapshot of a Transport (``Transport.stats()``) and its counters."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from transport._membership import Member
from transport._ratelog import RateLimitedLog

_MAX_PEERS = 256  # peers with drop counts of their own; more are counted under "*"

__all__ = ["Counters", "TransportStats"]


@dataclass(frozen=True, slots=True)
class TransportStats:
    """One consistent-enough snapshot of a transport.

    Attributes:
        node: this node's name.
        address: the bound endpoint, or None.
        peers: every other known node, with status and last heartbeat (monotonic).
        in_flight_asks: asks waiting for an answer.
        frames_in / frames_out: frames received on the ROUTER / handed to a DEALER
            (a batch frame counts once, however many envelopes it carries).
        frames_dropped: dropped frames (and refused connections) by reason, e.g.
            ``malformed``, ``sender_mismatch``, ``not_member``, ``duplicate``,
            ``send_queue_full`` (heartbeats/gossip skipped for a full DEALER),
            ``outbox_full`` (a tell/ask refused with ``OutboxFull``), ``node_down``
            (frames queued to a peer declared down), ``dispatch_full``,
            ``handshake_failed``, ``unknown_actor`` (a tell to no actor), ``shed``
            (a tell of a shed peer, dropped unread).
        dropped_by_peer: the drops that could be laid at a sender's door, by
            sender then reason: ``dispatch_full`` (its asks answered ``Overloaded``,
            its tells dropped, once it had ``dispatch_queue_per_sender`` waiting),
            ``unknown_actor``, ``duplicate``, ``malformed`` batch items...
        log_suppressed: per-message log lines written at DEBUG instead of WARNING
            (rate limiting), keyed ``reason`` or ``reason@peer``.
        dispatch_queue_depth: messages waiting for the handler.
        outbox_backlog: outgoing frames queued or backlogged, not yet handed to a socket.
        held_bytes: bytes of received frames read but not handled yet: peers sending
            faster than this node handles them (bounded; then ZeroMQ pushes back).
        clients: client sessions held (clients are not members: not in ``peers``).
        shed_peers: peers whose tells to some actor are dropped unread for now
            (counted ``shed`` against them): more than ``shed_budget`` of those
            were refused within one ``shed_window`` (see ``TransportSettings``).
    """

    node: str
    address: str | None
    peers: Mapping[str, Member]
    in_flight_asks: int
    frames_in: int
    frames_out: int
    frames_dropped: Mapping[str, int]
    dispatch_queue_depth: int
    outbox_backlog: int = 0
    held_bytes: int = 0
    clients: int = 0
    dropped_by_peer: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    log_suppressed: Mapping[str, int] = field(default_factory=dict)
    shed_peers: tuple[str, ...] = ()


class Counters:
    """Frame counters. ``frames_in`` / ``frames_out`` are written by the I/O thread only
    (plain increments, no lock: one writer; readers take a snapshot); drops come from
    any thread, under the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self._dropped: Counter[str] = Counter()
        self._by_peer: dict[str, Counter[str]] = {}
        self._logs: list[RateLimitedLog] = []

    def received(self, count: int = 1) -> None:
        self.frames_in += count  # I/O thread only

    def sent(self, count: int = 1) -> None:
        self.frames_out += count  # I/O thread only

    def dropped(self, reason: str, count: int = 1, *, peer: str | None = None) -> None:
        """Count ``count`` drops for ``reason``, also against ``peer`` when given."""
        if count:
            with self._lock:
                self._dropped[reason] += count
                if peer is not None:
                    tally = self._by_peer.get(peer)
                    if tally is None:
                        if len(self._by_peer) >= _MAX_PEERS:
                            peer = "*"
                        tally = self._by_peer.setdefault(peer, Counter())
                    tally[reason] += count

    def by_peer(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {peer: dict(sorted(c.items())) for peer, c in sorted(self._by_peer.items())}

    def watch(self, log: RateLimitedLog) -> RateLimitedLog:
        """Include ``log``'s suppressed-line counts in ``log_suppressed``; returns it."""
        with self._lock:
            self._logs.append(log)
        return log

    def log_suppressed(self) -> dict[str, int]:
        with self._lock:
            logs = list(self._logs)
        total: Counter[str] = Counter()
        for log in logs:
            total.update(log.suppressed())
        return dict(sorted(total.items()))

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        with self._lock:
            return self.frames_in, self.frames_out, dict(sorted(self._dropped.items()))
