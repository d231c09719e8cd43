"""Membership updates waiting to ride on outgoing probe messages (SWIM's dissemination).

Each update about a member (``[name, address, state, incarnation, epoch, by]``)
is sent on about ``retransmit_mult * ceil(log10(members + 1))`` messages, the
least-sent (then newest) first, at most ``max_piggyback`` per message, and then
dropped: infection-style gossip reaches every member in O(log N) protocol
periods with high probability, at a bounded cost per message. A newer update
about the same member replaces the older one (its count restarts at 0).

Pure and single-threaded (the owner serializes calls).
"""

from __future__ import annotations

import heapq
import math
from typing import Any

__all__ = ["Piggyback", "retransmit_limit"]

Update = list[Any]


def retransmit_limit(mult: int, members: int) -> int:
    """How many messages carry each update in a cluster of ``members``."""
    return mult * max(1, math.ceil(math.log10(members + 1)))


class Piggyback:
    """The updates still to be gossiped, with how often each was sent."""

    def __init__(self) -> None:
        self._updates: dict[str, list[Any]] = {}  # member -> [sends, -sequence, update]
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._updates)

    def add(self, update: Update) -> None:
        """Queue ``update``, replacing any older one about the same member."""
        self._sequence += 1
        self._updates[update[0]] = [0, -self._sequence, update]

    def discard(self, member: str) -> None:
        self._updates.pop(member, None)

    def take(self, count: int, limit: int, skip: str = "") -> list[Update]:
        """Up to ``count`` updates for one message (not the one about ``skip``, the
        receiver, which gets its own entry separately); each is dropped once sent
        ``limit`` times."""
        if not self._updates or count <= 0:
            return []
        chosen = heapq.nsmallest(count + 1, self._updates.values(), key=_order)
        taken: list[Update] = []
        for item in chosen:
            update = item[2]
            if update[0] == skip or len(taken) == count:
                continue
            taken.append(update)
            item[0] += 1
            if item[0] >= limit:
                del self._updates[update[0]]
        return taken


def _order(item: list[Any]) -> tuple[int, int]:
    return item[0], item[1]
