"""The member table: who is in the cluster, at which address, and whether they are up.

State machine of one peer, as seen by this node. A peer enters the table only
by a completed hello handshake (gossip naming an unknown node is only a hint);
once known, the failure detector (``_swim``) moves it::

    (unknown) --hello--> up --declared dead (own probes or gossip)--> down
    down --any valid message, or gossip of a refutation--> up   (a paused node resumes)
    up | down --leave (or gossip of it)--> left --hello--> up   (a node that rejoins)
    down | left --forget_after s--> (unknown) (forgotten: the table cannot fill)

Identity: each process picks a random *incarnation* at start. A hello with the
name of a peer that is ``up`` but with another incarnation is refused
(``NameTaken``: a second live process with that name). A hello with a new
incarnation supersedes a ``down`` or ``left`` peer (a restarted node, once the
detector declared the old process down). Departed peers (``down``/``left``) are
forgotten ``forget_after`` seconds after they departed, and the oldest departed
one is forgotten at once to make room when a hello finds the table full: only
live peers can fill it.

Thread-safety: mutations come from the transport's I/O thread (or one
simulation loop); ``snapshot``, ``status`` and ``address`` are read from API
threads. One lock guards all, except ``status``: one ``dict.get`` of a value
the single writer replaces whole, atomic in CPython, read on every send and
every received frame. Each mutation returns the ``Transition`` list it caused,
so the I/O thread can open or close sockets, fail pending asks and notify
subscribers outside the lock. No clock of its own: every mutation takes ``now``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

__all__ = ["Member", "MemberEvent", "MemberStatus", "Membership", "NameTaken", "Transition"]

MemberStatus = Literal["up", "down", "left"]


@dataclass(frozen=True, slots=True)
class Member:
    """One node as this node sees it.

    ``last_heartbeat`` is the local monotonic time a message from it last
    arrived (any kind: probes, acks, tells), or None for this node itself and
    for departed nodes. With SWIM a live peer is heard from directly every few
    probe periods, not every heartbeat: its age grows with the cluster's size.
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
    """The member table (the failure detector lives in ``_swim`` and drives it).

    Args:
        self_name: this node's name (always listed, always ``up``).
        self_address: this node's advertised endpoint, or None if it does not listen.
        max_members: peers beyond this many are refused (bounds hostile hellos).
        incarnation: this process's incarnation (random, chosen at start).
        forget_after: seconds after which a departed (down or left) peer is forgotten.
    """

    def __init__(
        self,
        self_name: str,
        self_address: str | None,
        max_members: int,
        *,
        incarnation: int = 1,
        forget_after: float = 60.0,
    ) -> None:
        self.self_name = self_name
        self.self_address = self_address
        self.self_incarnation = incarnation
        self._max_members = max_members
        self._forget_after = forget_after
        self._lock = threading.Lock()
        self._address: dict[str, str] = {}
        self._status: dict[str, MemberStatus] = {}
        self._incarnation: dict[str, int] = {}
        self._last_heard: dict[str, float] = {}  # live peers only
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
                    self._last_heard.get(name),
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

    def last_heard(self, name: str) -> float | None:
        """When a message from live peer ``name`` last arrived (no lock, like ``status``)."""
        return self._last_heard.get(name)

    def live_count(self) -> int:
        """How many peers are ``up`` (no lock: an estimate for timing decisions)."""
        return len(self._status) - len(self._departed)

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
            NameTaken: ``name`` is up as another incarnation (the live member is
                left untouched; the detector declares a dead one down soon).
            OverflowError: the table is full of live peers.
        """
        with self._lock:
            old = self._status.get(name)
            if old == "up" and self._incarnation[name] != incarnation:
                heard = self._last_heard.get(name)
                ago = f", heard from {now - heard:.1f}s ago" if heard is not None else ""
                raise NameTaken(
                    f"node name {name!r} is in use by a live member (at {self._address[name]}{ago})"
                )
            transitions = self._make_up(name, address, now)
            self._incarnation[name] = incarnation
            return transitions

    def heard(self, name: str, now: float) -> list[Transition]:
        """Any valid message from ``name`` proves it alive; revives a down node."""
        if self._status.get(name) == "up":
            # The common case, on every received frame: only a timestamp changes
            # (an existing key of a dict that only this thread writes), so readers
            # under the lock see either value; no lock needed.
            self._last_heard[name] = now
            return []
        with self._lock:
            status = self._status.get(name)
            if status == "up":
                self._last_heard[name] = now
                return []
            if status == "down":
                return self._make_up(name, self._address[name], now)
            return []

    def revive(self, name: str, now: float) -> list[Transition]:
        """Gossip says the ``down`` peer ``name`` refuted its death: it is up again."""
        with self._lock:
            if self._status.get(name) != "down":
                return []
            return self._make_up(name, self._address[name], now)

    def declare_down(self, name: str, now: float) -> list[Transition]:
        """The failure detector (this node's or gossiped) declared ``up`` peer ``name`` dead."""
        with self._lock:
            if self._status.get(name) != "up":
                return []
            self._status[name] = "down"
            self._departed[name] = now
            self._last_heard.pop(name, None)
            return [Transition(name, "up", "down", self._address[name])]

    def on_leave(self, name: str, now: float) -> list[Transition]:
        """``name`` left gracefully."""
        with self._lock:
            status = self._status.get(name)
            if status is None or status == "left":
                return []
            self._status[name] = "left"
            self._departed.pop(name, None)
            self._departed[name] = now
            self._last_heard.pop(name, None)
            return [Transition(name, status, "left", self._address[name])]

    def check(self, now: float) -> None:
        """Forget the peers departed more than ``forget_after`` seconds ago."""
        if not self._departed:
            return
        with self._lock:
            for name, departed in list(self._departed.items()):
                if now - departed <= self._forget_after:
                    break  # in departure order: the rest departed later
                self._forget(name)

    def take_forgotten(self) -> list[str]:
        """Peers forgotten since the last call (their links can be closed)."""
        forgotten, self._forgotten = self._forgotten, []
        return forgotten

    def _forget(self, name: str) -> None:
        del self._status[name], self._address[name], self._incarnation[name]
        self._departed.pop(name, None)
        self._last_heard.pop(name, None)
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
        self._last_heard[name] = now
        if old == "up" and old_address == address:
            return []
        return [Transition(name, old, "up", address, old_address)]
