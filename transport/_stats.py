"""Introspection: a frozen snapshot of a Transport (``Transport.stats()``) and its counters."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from transport._membership import Member

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
            ``handshake_failed``.
        dispatch_queue_depth: messages waiting for the handler.
        outbox_backlog: outgoing frames queued or backlogged, not yet handed to a socket.
        clients: client sessions held (clients are not members: not in ``peers``).
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
    clients: int = 0


class Counters:
    """Frame counters. ``frames_in`` / ``frames_out`` are written by the I/O thread only
    (plain increments, no lock: one writer; readers take a snapshot); drops come from
    any thread, under the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self._dropped: Counter[str] = Counter()

    def received(self, count: int = 1) -> None:
        self.frames_in += count  # I/O thread only

    def sent(self, count: int = 1) -> None:
        self.frames_out += count  # I/O thread only

    def dropped(self, reason: str, count: int = 1) -> None:
        if count:
            with self._lock:
                self._dropped[reason] += count

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        with self._lock:
            return self.frames_in, self.frames_out, dict(sorted(self._dropped.items()))
