"""The member table: who is in the cluster, at which address, and whether they are up.

State machine of one peer, as seen by this node (this node's own view is
authoritative; gossip never adds nor marks down a peer: the protocol only
admits a peer that completed a hello handshake itself)::

    (unknown) --hello--> up --silent > down_after--> down
    down --any valid message--> up            (a paused node that resumes)
    up | down --leave--> left --hello--> up   (a node that rejoins)
    down | left --forget_after s--> (unknown) (forgotten: the table cannot fill)

Identity: each process picks a random *incarnation* at start. A hello with the
name of a peer that is ``up`` and still heard from within ``down_after`` but
with another incarnation is refused (``NameTaken``: a second live process with
that name). A hello with a new incarnation supersedes a ``down`` or ``left``
peer, or an ``up`` one silent past the failure detector (a restarted node).
Departed peers (``down``/``left``) are forgotten ``forget_after`` seconds after
they departed, and the oldest departed one is forgotten at once to make room
when a hello finds the table full: only live peers can fill it.

Thread-safety: mutations come from the transport's I/O thread; ``snapshot``,
``status`` and ``address`` are read from API threads. One lock guards all,
except ``status``: one ``dict.get`` of a value the single writer replaces
whole, atomic in CPython, read on every send and every received frame.
Each mutation returns the ``Transition`` list it caused, so the I/O thread can
open or close sockets, fail pending asks and notify subscribers outside the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from transport._detector import FailureDetector

__all__ = ["Member", "MemberEvent", "MemberStatus", "Membership", "NameTaken", "Transition"]

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
    incarnation: int = 0


class NameTaken(ValueError):
    """A hello named a live peer but came from another incarnation (another process)."""


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
        incarnation: this process's incarnation (random, chosen at start).
        forget_after: seconds after which a departed (down or left) peer is forgotten.
    """

    def __init__(
        self,
        self_name: str,
        self_address: str | None,
        detector: FailureDetector,
        max_members: int,
        *,
        incarnation: int = 1,
        forget_after: float = 60.0,
    ) -> None:
        self.self_name = self_name
        self.self_address = self_address
        self.self_incarnation = incarnation
        self._detector = detector
        self._max_members = max_members
        self._forget_after = forget_after
        self._lock = threading.Lock()
        self._address: dict[str, str] = {}
        self._status: dict[str, MemberStatus] = {}
        self._incarnation: dict[str, int] = {}
        self._departed: dict[str, float] = {}  # down or left peer -> when (insertion = age order)
        self._forgotten: list[str] = []  # forgotten since the last take_forgotten (I/O thread)

    # -- reads (any thread) -------------------------------------------------

    def snapshot(self) -> dict[str, Member]:
        """Every known node, this one included, keyed by name."""
        with self._lock:
            members = {
                name: Member(
                    name,
                    self._address[name],
                    status,
                    self._detector.last_heartbeat(name),
                    self._incarnation[name],
                )
                for name, status in self._status.items()
            }
        members[self.self_name] = Member(
            self.self_name, self.self_address or "", "up", None, self.self_incarnation
        )
        return dict(sorted(members.items()))

    def status(self, name: str) -> MemberStatus | None:
        """The status of peer ``name``, or None if unknown (no lock: see the module docstring)."""
        return self._status.get(name)

    def incarnation(self, name: str) -> int | None:
        """The incarnation of peer ``name`` (no lock, like ``status``), or None if unknown."""
        return self._incarnation.get(name)

    def address(self, name: str) -> str | None:
        with self._lock:
            return self._address.get(name)

    def names(self, *statuses: MemberStatus) -> list[str]:
        """Peers whose status is one of ``statuses``."""
        with self._lock:
            return sorted(name for name, status in self._status.items() if status in statuses)

    def gossip_entries(self) -> list[list[str | int]]:
        """The member list on the wire: [[name, address, status, incarnation], ...], self first."""
        with self._lock:
            entries: list[list[str | int]] = [
                [name, self._address[name], status, self._incarnation[name]]
                for name, status in self._status.items()
            ]
        if self.self_address is not None:
            entries.insert(0, [self.self_name, self.self_address, "up", self.self_incarnation])
        return entries

    # -- mutations (I/O thread) ---------------------------------------------

    def on_hello(self, name: str, address: str, now: float, incarnation: int) -> list[Transition]:
        """``name`` said hello (or answered ours): it is up at ``address`` as ``incarnation``.

        Raises:
            NameTaken: ``name`` is up, heard from within ``down_after``, as another
                incarnation (the live member is left untouched).
            OverflowError: the table is full of live peers.
        """
        with self._lock:
            old = self._status.get(name)
            transitions: list[Transition] = []
            if old == "up" and self._incarnation[name] != incarnation:
                heard = self._detector.last_heartbeat(name)
                if heard is not None and now - heard <= self._detector.down_after:
                    raise NameTaken(
                        f"node name {name!r} is in use by a live member (at "
                        f"{self._address[name]}, heard from {now - heard:.1f}s ago)"
                    )
                # silent past the failure detector: the old incarnation is down, superseded
                self._detector.forget(name)
                self._status[name] = "down"
                transitions.append(Transition(name, "up", "down", self._address[name]))
            transitions += self._make_up(name, address, now)
            self._incarnation[name] = incarnation
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

    def on_leave(self, name: str, now: float) -> list[Transition]:
        """``name`` left gracefully."""
        with self._lock:
            status = self._status.get(name)
            if status is None or status == "left":
                return []
            self._status[name] = "left"
            self._departed.pop(name, None)
            self._departed[name] = now
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
                    self._departed[name] = now
                    transitions.append(Transition(name, "up", "down", self._address[name]))
            for name, departed in list(self._departed.items()):
                if now - departed <= self._forget_after:
                    break  # in departure order: the rest departed later
                self._forget(name)
        return transitions

    def take_forgotten(self) -> list[str]:
        """Peers forgotten since the last call (their links can be closed)."""
        forgotten, self._forgotten = self._forgotten, []
        return forgotten

    def _forget(self, name: str) -> None:
        del self._status[name], self._address[name], self._incarnation[name]
        self._departed.pop(name, None)
        self._detector.forget(name)
        self._forgotten.append(name)

    def _make_up(self, name: str, address: str, now: float) -> list[Transition]:
        old = self._status.get(name)
        if old is None and len(self._status) >= self._max_members:
            if not self._departed:
                raise OverflowError(
                    f"member table full ({self._max_members} live nodes), refusing {name!r}"
                )
            self._forget(next(iter(self._departed)))  # the oldest departed peer makes room
        old_address = self._address.get(name)
        self._departed.pop(name, None)
        self._status[name] = "up"
        self._address[name] = address
        self._detector.heartbeat(name, now)
        if old == "up" and old_address == address:
            return []
        return [Transition(name, old, "up", address, old_address)]
