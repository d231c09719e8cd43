"""SystemStats: a frozen snapshot of one actor system, for people and for ``actorflow status``."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from transport import TransportStats

__all__ = ["RunStats", "SystemStats", "transport_figures"]


@dataclass(frozen=True)
class RunStats:
    """One run this system coordinates (or coordinated)."""

    run_id: str
    state: str
    paused: bool
    steps_total: int
    steps_completed: int


@dataclass(frozen=True)
class SystemStats:
    """What a node is doing now.

    Attributes:
        node / address: its name and listening endpoint (None if not listening).
        members: every known member and its status (``up``/``down``/``left``).
        heartbeat_age: seconds since each peer was last heard from.
        runs: the runs it coordinates, newest last.
        actors: actors it spawned that are alive.
        node_actors_idle / node_actors_spawned / node_actors_reused: the node pool.
        steps_hosted: remote steps running here for other coordinators.
        frames_in / frames_out / frames_dropped / in_flight_asks: the transport.
        clients: client sessions it holds (clients are not members).
        held_bytes: received frames not handled yet, in bytes (peers sending faster
            than it handles; bounded, then ZeroMQ pushes back on them).
        dropped_by_peer: drops laid at a sender's door, by sender then reason
            (``dispatch_full``: its asks answered ``Overloaded`` and its tells
            dropped; ``unknown_actor``: tells to no actor; ...).
        log_suppressed: per-message log lines rate-limited to DEBUG, by
            ``reason`` or ``reason@peer``.
        shed_peers: peers whose tells to some actor are dropped unread for now,
            counted ``shed``: too many of them were refused (``shed_budget``).
    """

    node: str
    address: str | None
    members: dict[str, str]
    runs: list[RunStats]
    actors: int
    node_actors_idle: int
    node_actors_spawned: int
    node_actors_reused: int
    steps_hosted: int
    heartbeat_age: dict[str, float] = field(default_factory=dict)
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: dict[str, int] = field(default_factory=dict)
    in_flight_asks: int = 0
    clients: int = 0
    held_bytes: int = 0
    dropped_by_peer: dict[str, dict[str, int]] = field(default_factory=dict)
    log_suppressed: dict[str, int] = field(default_factory=dict)
    shed_peers: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-friendly dict (what ``$system`` answers to ``stats``)."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SystemStats:
        runs = [RunStats(**run) for run in data.pop("runs", [])]
        known = {f.name for f in fields(cls)}
        # a newer node may send more figures: keep what this version knows
        return cls(runs=runs, **{k: v for k, v in data.items() if k in known})

    def render(self) -> str:
        """Human-readable lines (the CLI prints this)."""
        lines = [f"node {self.node} at {self.address or '-'}"]
        for name, status in sorted(self.members.items()):
            age = self.heartbeat_age.get(name)
            heard = "" if age is None else f", heard {age:.3f}s ago"
            lines.append(f"  member {name:<20} {status}{heard}")
        lines.append(
            f"  actors {self.actors}; node actors idle {self.node_actors_idle}, "
            f"spawned {self.node_actors_spawned}, reused {self.node_actors_reused}; "
            f"remote steps hosted {self.steps_hosted}"
        )
        lines.append(
            f"  frames in {self.frames_in}, out {self.frames_out}, dropped "
            f"{sum(self.frames_dropped.values())} {dict(self.frames_dropped) or ''}; "
            f"asks in flight {self.in_flight_asks}; clients {self.clients}; "
            f"held {self.held_bytes} bytes"
        )
        for peer, drops in sorted(self.dropped_by_peer.items()):
            lines.append(f"  dropped from {peer}: {sum(drops.values())} {dict(drops)}")
        if self.shed_peers:
            lines.append(f"  shedding tells to unknown actors from {', '.join(self.shed_peers)}")
        if self.log_suppressed:
            lines.append(
                f"  log lines suppressed {sum(self.log_suppressed.values())} "
                f"{dict(self.log_suppressed)}"
            )
        for run in self.runs:
            pause = " (paused)" if run.paused else ""
            lines.append(
                f"  run {run.run_id} {run.state}{pause}: "
                f"{run.steps_completed}/{run.steps_total} steps completed"
            )
        return "\n".join(lines)


def transport_figures(stats: TransportStats | None) -> dict[str, Any]:
    """The ``SystemStats`` fields read from the transport (none when not listening)."""
    if stats is None:
        return {}
    now = time.monotonic()
    return {
        "heartbeat_age": {
            name: round(now - peer.last_heartbeat, 3)
            for name, peer in stats.peers.items()
            if peer.last_heartbeat is not None
        },
        "frames_in": stats.frames_in,
        "frames_out": stats.frames_out,
        "frames_dropped": dict(stats.frames_dropped),
        "in_flight_asks": stats.in_flight_asks,
        "clients": stats.clients,
        "held_bytes": stats.held_bytes,
        "dropped_by_peer": {peer: dict(drops) for peer, drops in stats.dropped_by_peer.items()},
        "log_suppressed": dict(stats.log_suppressed),
        "shed_peers": list(stats.shed_peers),
    }
