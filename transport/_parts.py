"""The parts of one Transport that its I/O loop, outbox and protocol all use, in one object.

``Transport`` builds them once and hands the whole ``NodeParts`` down, so each
constructor names what it shares with the others in one parameter instead of
eight, and "go to definition" on a field leads to the one place it is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from transport._capabilities import Capabilities
from transport._membership import Membership
from transport._reply import PendingAsks
from transport._security import Security
from transport._settings import TransportSettings
from transport._stats import Counters

__all__ = ["NodeParts"]


@dataclass(frozen=True, slots=True)
class NodeParts:
    """Who this node is and the state its threads share.

    Attributes:
        name: this node's name.
        settings: timing and bounds.
        security: CURVE keys and allowlist, or None for plaintext.
        now: the monotonic clock (injectable for tests).
        ids: message ids of this transport instance (``new_id_counter``; ``next`` is
            thread-safe).
        membership: the member table (mutated on the I/O thread only).
        pending: asks waiting for an answer (thread-safe).
        counters: frame and drop counters.
        capabilities: what this node and each peer advertised (thread-safe).
    """

    name: str
    settings: TransportSettings
    security: Security | None
    now: Callable[[], float]
    ids: Iterator[int]
    membership: Membership
    pending: PendingAsks
    counters: Counters
    capabilities: Capabilities = field(default_factory=Capabilities)

    def next_id(self) -> int:
        """A fresh message id."""
        return next(self.ids)
