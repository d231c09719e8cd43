"""A simulated cluster: the real SWIM code on a virtual clock and an in-process fabric.

Every simulated member is a real ``Membership`` driven by a real ``Swim`` (the
code the transport runs); only the clock and the wire are simulated. The
fabric delivers each message after a random delay, loses a given fraction,
drops messages across a partition, and models a killed member (it neither
receives nor sends) and a paused one (SIGSTOP-like: its ticks and messages wait
until it resumes). Messages are not encoded: the bodies are the same Python
values the codec would carry.

Used at small sizes by the test suite (properties: detection within the bound,
everyone learns it, no false downs at 1% loss, refutation, healed partitions)
and at 500 and 1,000 members by ``make bench`` (family ``membership``).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from transport._envelope import PROBE_KINDS, Kind
from transport._membership import Membership, Transition
from transport._settings import DEFAULT_SETTINGS, TransportSettings
from transport._swim import Swim

__all__ = ["DeathReport", "Fabric", "QuietReport", "measure_deaths", "measure_quiet"]


@dataclass(slots=True)
class _Member:
    name: str
    membership: Membership
    swim: Swim
    alive: bool = True
    paused_until: float = 0.0


@dataclass
class Fabric:
    """``size`` members that all know each other, on a virtual clock starting at 0.

    Args:
        size: how many members.
        loss: fraction of messages lost (each independently).
        delay: (low, high) seconds of uniform one-way delay.
        seed: makes a run reproducible.
        settings: the members' settings (``max_members`` is raised to fit).
    """

    size: int
    loss: float = 0.0
    delay: tuple[float, float] = (0.0005, 0.005)
    seed: int = 0
    settings: TransportSettings = DEFAULT_SETTINGS
    now: float = 0.0
    sent: int = 0
    transitions: list[tuple[float, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - a reproducible simulation
        self._events: list[tuple[float, int, str, Any]] = []
        self._sequence = 0
        self._ids = 0
        self._groups: dict[str, int] | None = None
        settings = replace(self.settings, max_members=max(self.settings.max_members, self.size + 1))
        self.names = [f"m{i:04d}" for i in range(self.size)]
        self.members: dict[str, _Member] = {}
        for index, name in enumerate(self.names):
            table = Membership(
                name,
                _address(index),
                settings.max_members,
                incarnation=index + 1,
                forget_after=settings.forget_after,
            )
            for other, peer in enumerate(self.names):
                if other != index:
                    table.on_hello(peer, _address(other), 0.0, other + 1)
            rng = random.Random(self._rng.getrandbits(64))  # noqa: S311
            swim = Swim(table, settings, self._sender(name), rng=rng, now=0.0)
            self.members[name] = _Member(name, table, swim)
            self._schedule(self._rng.uniform(0, settings.check_interval), "tick", name)
        self._tick_every = settings.check_interval

    # -- control -------------------------------------------------------------------------

    def run(self, until: float) -> None:
        """Process every event up to virtual time ``until``."""
        events = self._events
        while events and events[0][0] <= until:
            at, _, what, payload = heapq.heappop(events)
            self.now = at
            if what == "tick":
                self._tick(payload)
            else:
                self._deliver(payload)
        self.now = until

    def kill(self, name: str) -> None:
        """kill -9: ``name`` stops receiving, sending and ticking."""
        self.members[name].alive = False

    def pause(self, name: str, seconds: float) -> None:
        """SIGSTOP for ``seconds``: its ticks and incoming messages wait until then."""
        self.members[name].paused_until = self.now + seconds

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Messages between different groups are dropped (members in no group: group -1)."""
        self._groups = {name: index for index, group in enumerate(groups) for name in group}

    def heal(self) -> None:
        self._groups = None

    def status(self, observer: str, member: str) -> str | None:
        return self.members[observer].membership.status(member)

    def live(self) -> list[str]:
        return [name for name, member in self.members.items() if member.alive]

    # -- internals -----------------------------------------------------------------------

    def _schedule(self, at: float, what: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (at, self._sequence, what, payload))

    def _sender(self, sender: str) -> Any:
        def send(node: str, kind: Kind, body: Any, correlation_id: int) -> int:
            self._ids += 1
            self.sent += 1
            if self._rng.random() < self.loss:
                return self._ids
            groups = self._groups
            if groups is not None and groups.get(sender, -1) != groups.get(node, -1):
                return self._ids
            message = (sender, node, kind, self._ids, correlation_id, body)
            self._schedule(self.now + self._rng.uniform(*self.delay), "deliver", message)
            return self._ids

        return send

    def _tick(self, name: str) -> None:
        member = self.members[name]
        if not member.alive:
            return
        if member.paused_until > self.now:
            self._schedule(member.paused_until, "tick", name)
            return
        self._record(name, member.swim.tick(self.now))
        member.membership.check(self.now)
        self._schedule(self.now + self._tick_every, "tick", name)

    def _deliver(self, message: tuple[str, str, Kind, int, int, Any]) -> None:
        sender, node, kind, message_id, correlation_id, body = message
        member = self.members.get(node)
        if member is None or not member.alive:
            return
        if member.paused_until > self.now:
            self._schedule(member.paused_until, "deliver", message)
            return
        if self.members[sender].membership is member.membership or kind not in PROBE_KINDS:
            return  # the member-list push only feeds joins, which are not simulated
        status = member.membership.status(sender)
        if status is None or status == "left" or body[0] != member.membership.incarnation(sender):
            return
        self._record(
            node, member.swim.receive(kind, sender, message_id, correlation_id, body, self.now)
        )

    def _record(self, observer: str, transitions: list[Transition]) -> None:
        for transition in transitions:
            self.transitions.append((self.now, observer, transition.node, transition.new))


def _address(index: int) -> str:
    return f"tcp://127.0.0.1:{10000 + index}"


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True)
class DeathReport:
    """Killed members, one by one: when the first member, and the last live one, saw it down."""

    size: int
    detect: list[float]  # kill -> first member declares it down
    disseminate: list[float]  # kill -> every live member has it down
    undetected: int  # deaths not known to every live member by the end
    false_downs: int  # down transitions of members that were alive
    messages_per_member_second: float

    def summary(self) -> dict[str, float]:
        return {
            "detect_p50": _percentile(self.detect, 0.5),
            "detect_p99": _percentile(self.detect, 0.99),
            "detect_max": max(self.detect, default=float("nan")),
            "disseminate_p50": _percentile(self.disseminate, 0.5),
            "disseminate_p99": _percentile(self.disseminate, 0.99),
            "disseminate_max": max(self.disseminate, default=float("nan")),
        }


def measure_deaths(
    size: int, deaths: int, *, every: float = 1.0, loss: float = 0.0, seed: int = 0
) -> DeathReport:
    """Kill ``deaths`` members ``every`` seconds apart after a 5 s warm-up; wait 15 s more."""
    fabric = Fabric(size, loss=loss, seed=seed)
    fabric.run(5.0)
    start_sent, start = fabric.sent, fabric.now
    victims = random.Random(seed).sample(fabric.names, deaths)  # noqa: S311
    killed: dict[str, float] = {}
    for victim in victims:
        fabric.kill(victim)
        killed[victim] = fabric.now
        fabric.run(fabric.now + every)
    fabric.run(fabric.now + 15.0)
    alive = len(fabric.names) - deaths
    messages = (fabric.sent - start_sent) / (fabric.now - start) / size
    first: dict[str, float] = {}
    seen: dict[str, set[str]] = {victim: set() for victim in victims}
    last: dict[str, float] = {}
    false_downs = 0
    for at, observer, node, new in fabric.transitions:
        if new != "down":
            continue
        if node not in killed or at < killed[node]:
            false_downs += 1
            continue
        first.setdefault(node, at)
        if observer not in killed:
            seen[node].add(observer)
            if len(seen[node]) == alive:
                last[node] = at
    return DeathReport(
        size,
        [first[v] - killed[v] for v in victims if v in first],
        [last[v] - killed[v] for v in victims if v in last],
        sum(1 for v in victims if v not in last),
        false_downs,
        messages,
    )


@dataclass(frozen=True)
class QuietReport:
    """A cluster where nobody dies: every suspicion and every down is false."""

    size: int
    seconds: float
    loss: float
    suspicions: int
    downs: int
    refutations: int
    messages_per_member_second: float

    @property
    def suspicions_per_hour(self) -> float:
        return self.suspicions * 3600.0 / self.seconds


def measure_quiet(size: int, seconds: float, *, loss: float, seed: int = 0) -> QuietReport:
    """Run ``seconds`` (after a 2 s warm-up) with ``loss``; count false suspicions and downs."""
    fabric = Fabric(size, loss=loss, seed=seed)
    fabric.run(2.0)
    before = sum(m.swim.stats.suspected for m in fabric.members.values())
    refuted = sum(m.swim.stats.refuted for m in fabric.members.values())
    start_sent, start = fabric.sent, fabric.now
    fabric.run(start + seconds)
    stats = [m.swim.stats for m in fabric.members.values()]
    return QuietReport(
        size,
        seconds,
        loss,
        sum(s.suspected for s in stats) - before,
        sum(1 for _, _, _, new in fabric.transitions if new == "down"),
        sum(s.refuted for s in stats) - refuted,
        (fabric.sent - start_sent) / seconds / size,
    )
