"""The member table: who is in the cluster, at which address, and whether they are up.

State machine of one peer, as seen by this node (this node's own view is
authoritative; gossip only *introduces* peers, it never marks one down)::

    (unknown) --hello / gossip "up"--> up --silent > down_after--> down
    down --any valid message--> up            (a paused node that resumes)
    up | down --leave--> left --hello--> up   (a node that rejoins)

Thread-safety: mutations come from the transport's I/O thread; ``snapshot``,
``status`` and ``address`` are read from API threads. One lock guards all,
except ``status``: one ``dict.get`` of a value the single writer replaces
whole, atomic in CPython, read on every send and every received frame.
Each mutation returns the ``Transition`` list it caused, so the I/O thread can
open or close sockets, fail pending asks and notify subscribers outside the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from transport._detector import FailureDetector

__all__ = ["Member", "MemberEvent", "MemberStatus", "Membership", "Transition"]

MemberStatus = Literal["up", "down", "left"]


@dataclass(frozen=True, slots=True)
class Member:
    """One node as this node sees it.

    ``last_heartbeat`` is the local monotonic time it was last heard from, or
    None for this node itself and for nodes no longer watched (down or left).
    """

    name: str
    address: str
    status: MemberStatus
    last_heartbeat: float | None


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A peer became ``up``, ``down`` or ``left``; passed to ``Transport.subscribe`` callbacks."""

    node: str
    status: MemberStatus


@dataclass(frozen=True, slots=True)
class Transition:
    """A status change (``old`` is None for a newly known node) or an address change."""

    node: str
    old: MemberStatus | None
    new: MemberStatus
    address: str
    old_address: str | None = None


class Membership:
    """The member table plus its failure detector.

    Args:
        self_name: this node's name (always listed, always ``up``).
        self_address: this node's advertised endpoint, or None if it does not listen.
        detector: the failure detector; only this class calls it.
        max_members: peers beyond this many are refused (bounds hostile hellos).
    """

    def __init__(
        self,
        self_name: str,
        self_address: str | None,
        detector: FailureDetector,
        max_members: int,
    ) -> None:
        self.self_name = self_name
        self.self_address = self_address
        self._detector = detector
        self._max_members = max_members
        self._lock = threading.Lock()
        self._address: dict[str, str] = {}
        self._status: dict[str, MemberStatus] = {}

    # -- reads (any thread) -------------------------------------------------

    def snapshot(self) -> dict[str, Member]:
        """Every known node, this one included, keyed by name."""
        with self._lock:
            members = {
                name: Member(name, self._address[name], status, self._detector.last_heartbeat(name))
                for name, status in self._status.items()
            }
        members[self.self_name] = Member(self.self_name, self.self_address or "", "up", None)
        return dict(sorted(members.items()))

    def status(self, name: str) -> MemberStatus | None:
        """The status of peer ``name``, or None if unknown (no lock: see the module docstring)."""
        return self._status.get(name)

    def address(self, name: str) -> str | None:
        with self._lock:
            return self._address.get(name)

    def names(self, *statuses: MemberStatus) -> list[str]:
        """Peers whose status is one of ``statuses``."""
        with self._lock:
            return sorted(name for name, status in self._status.items() if status in statuses)

    def gossip_entries(self) -> list[list[str]]:
        """The member list as sent on the wire: [[name, address, status], ...], self first."""
        with self._lock:
            entries = [[name, self._address[name], status] for name, status in self._status.items()]
        if self.self_address is not None:
            entries.insert(0, [self.self_name, self.self_address, "up"])
        return entries

    # -- mutations (I/O thread) ---------------------------------------------

    def on_hello(self, name: str, address: str, now: float) -> list[Transition]:
        """A node introduced itself: it is up at ``address`` (rejoin after leave included)."""
        with self._lock:
            return self._make_up(name, address, now)

    def learn(self, entries: Iterable[Sequence[str]], now: float) -> list[Transition]:
        """Merge a gossiped member list: only unknown nodes reported ``up`` are added."""
        transitions: list[Transition] = []
        with self._lock:
            for name, address, status in entries:
                if name == self.self_name or name in self._status or status != "up":
                    continue
                transitions += self._make_up(name, address, now)
        return transitions

    def heard(self, name: str, now: float) -> list[Transition]:
        """Any valid message from ``name`` proves it alive; revives a down node."""
        if self._status.get(name) == "up":
            # The common case, on every received frame: only the detector's timestamp
            # changes (an existing key of a dict that only this thread writes), so
            # readers under the lock see either value; no lock needed.
            self._detector.heartbeat(name, now)
            return []
        with self._lock:
            status = self._status.get(name)
            if status == "up":
                self._detector.heartbeat(name, now)
                return []
            if status == "down":
                return self._make_up(name, self._address[name], now)
            return []

    def on_leave(self, name: str) -> list[Transition]:
        """``name`` left gracefully."""
        with self._lock:
            status = self._status.get(name)
            if status is None or status == "left":
                return []
            self._status[name] = "left"
            self._detector.forget(name)
            return [Transition(name, status, "left", self._address[name])]

    def check(self, now: float) -> list[Transition]:
        """Run the failure detector; mark overdue ``up`` nodes ``down``."""
        transitions: list[Transition] = []
        with self._lock:
            for name in self._detector.overdue(now):
                self._detector.forget(name)
                if self._status.get(name) == "up":
                    self._status[name] = "down"
                    transitions.append(Transition(name, "up", "down", self._address[name]))
        return transitions

    def _make_up(self, name: str, address: str, now: float) -> list[Transition]:
        old = self._status.get(name)
        if old is None and len(self._status) >= self._max_members:
            raise OverflowError(f"member table full ({self._max_members} nodes), refusing {name!r}")
        old_address = self._address.get(name)
        self._status[name] = "up"
        self._address[name] = address
        self._detector.heartbeat(name, now)
        if old == "up" and old_address == address:
            return []
        return [Transition(name, old, "up", address, old_address)]
