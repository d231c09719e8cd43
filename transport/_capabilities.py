"""Capabilities: what each member says it can do, carried by the hello handshake.

A capability set is a map of kind -> names (the runtime uses ``"tasks"`` and
``"actors"``: the qualified names a node registered). The transport does not
interpret them; it carries this node's set in every ``hello`` it sends and in
the first entry of every welcome it answers, and keeps the last set each peer
advertised. A node whose set grows after it joined says hello again to every
live peer (``Transport.advertise``): a repeated hello of the same incarnation
only refreshes what the receiver knows.

The lists travel only in hellos and welcomes (once per join or change, never
per heartbeat or gossip), so their size costs nothing per period; they are
bounded by the frame limits (``Limits``).

Thread-safety: one lock; ``own`` and ``of`` are read from any thread, peers'
sets are written by the I/O thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from transport._errors import ProtocolError

__all__ = ["Capabilities", "CapabilitySet", "capabilities_from_wire", "capabilities_to_wire"]

CapabilitySet = Mapping[str, frozenset[str]]

MAX_NAME = 1024  # longest advertised name (a qualified task or class name)
EMPTY: CapabilitySet = {}


def capabilities_to_wire(caps: CapabilitySet) -> dict[str, list[str]]:
    """The wire form: a map of kind -> sorted array of names."""
    return {kind: sorted(names) for kind, names in sorted(caps.items())}


def capabilities_from_wire(value: object) -> CapabilitySet:
    """Check and convert a wire capability map.

    Raises:
        ProtocolError: not a map of str -> array of non-empty str (at most 1024 chars).
    """
    if not isinstance(value, dict):
        raise ProtocolError(f"capabilities must be a map, got {type(value).__name__}")
    result: dict[str, frozenset[str]] = {}
    for kind, names in value.items():
        if not isinstance(kind, str) or not kind or len(kind) > MAX_NAME:
            raise ProtocolError(f"capability kind must be a non-empty str, got {kind!r:.60}")
        if not isinstance(names, list) or not all(
            isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in names
        ):
            raise ProtocolError(f"capabilities {kind!r} must be an array of names")
        result[kind] = frozenset(names)
    return result


class Capabilities:
    """This node's advertised set and the last set each peer advertised (by incarnation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._own: CapabilitySet = EMPTY
        self._peers: dict[str, tuple[int, CapabilitySet]] = {}

    def own(self) -> CapabilitySet:
        with self._lock:
            return self._own

    def set_own(self, caps: Mapping[str, Iterable[str]]) -> bool:
        """Replace this node's set; True if it changed."""
        frozen = {kind: frozenset(names) for kind, names in caps.items()}
        with self._lock:
            changed = frozen != self._own
            self._own = frozen
        return changed

    def learn(self, peer: str, incarnation: int, caps: CapabilitySet) -> None:
        """``peer`` (as ``incarnation``) advertised ``caps`` (I/O thread)."""
        with self._lock:
            self._peers[peer] = (incarnation, caps)

    def learn_wire(self, peer: str, incarnation: int, value: object) -> None:
        """``learn`` from a wire value (already checked by the envelope decoder)."""
        self.learn(peer, incarnation, capabilities_from_wire(value))

    def welcome(self, entries: list[list[Any]], name: str) -> list[list[Any]]:
        """The member list answering a hello: this node's own (first) entry gets its set."""
        own = self.own()
        if own and entries and entries[0][0] == name:
            entries = [[*entries[0], capabilities_to_wire(own)], *entries[1:]]
        return entries

    def of(self, peer: str, incarnation: int | None = None) -> CapabilitySet:
        """What ``peer`` advertised (empty if nothing, or for another incarnation)."""
        with self._lock:
            entry = self._peers.get(peer)
        if entry is None or (incarnation is not None and entry[0] != incarnation):
            return EMPTY
        return entry[1]

    def forget(self, peer: str) -> None:
        with self._lock:
            self._peers.pop(peer, None)
