"""Client sessions: programs connected to this member that said hello with the client role.

A client is not a member. It connects a DEALER to this node's ROUTER, says
``hello`` with ``{"role": "client", "incarnation": int}`` (no address: it
does not listen), and is answered over that same connection, by the ROUTER,
to the connection's routing id. It takes no place in the member table, is
never gossiped, never heartbeated and never a placement target; a member
never asks it anything.

What a session holds is bounded: at most ``max_clients`` sessions, and at most
``max_per_name`` of them under one client name (a hello past either is
refused), each forgotten ``idle_after`` seconds after its last frame. Sessions
are keyed by routing id (one per connection), so two clients may share a name
(with CURVE: one key, several programs), up to that bound; the outbox reaches a
session under its ``key`` (``/client/<routing id hex>``), which can never be a
node name (node names have no ``/``). A client process talks to a member over
one connection, and its incarnation is drawn at random: a hello on a new
connection with the name and incarnation of a session held on another one is
that client reconnected (its old connection is gone), so it takes the old
session's place instead of counting twice until the old one goes idle.

Thread: I/O thread only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLIENT_KEY_PREFIX", "ClientSession", "ClientSessions"]

CLIENT_KEY_PREFIX = "/client/"


@dataclass(slots=True)
class ClientSession:
    """One connected client, as this member sees it."""

    key: str  # where answers go: the outbox / link key of the routing id
    route: bytes  # the ROUTER routing id of the client's connection
    name: str  # the envelope sender it said hello as (with CURVE: its key's name)
    incarnation: int
    last_heard: float


class ClientSessions:
    """The client sessions of one member. See the module docstring.

    Args:
        max_clients: most sessions at once.
        max_per_name: most sessions at once under one client name.
        idle_after: seconds without a frame after which a session is forgotten.
    """

    def __init__(self, max_clients: int, max_per_name: int, idle_after: float) -> None:
        self._max = max_clients
        self._max_per_name = max_per_name
        self._idle_after = idle_after
        self._sessions: dict[bytes, ClientSession] = {}  # least recently heard first
        self._per_name: dict[str, int] = {}  # client name -> its sessions
        self._routes: dict[tuple[str, int], bytes] = {}  # (name, incarnation) -> its route

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, route: bytes) -> ClientSession | None:
        return self._sessions.get(route)

    def open(
        self, route: bytes, name: str, incarnation: int, now: float
    ) -> tuple[ClientSession, ClientSession | None] | str:
        """A hello with the client role on connection ``route``: the (new or renewed)
        session and the session of the same client on another connection it replaces
        (closed here), or why there is no room for it (``max_clients`` or
        ``max_per_name``)."""
        previous = self._routes.get((name, incarnation))
        replaced = None if previous in (None, route) else self._sessions.get(previous)
        if replaced is not None:
            self.close(replaced)
        session = self._sessions.get(route)
        if session is None and len(self._sessions) >= self._max:
            return f"too many client sessions (max_clients={self._max})"
        renamed = session is None or session.name != name
        if renamed and self._per_name.get(name, 0) >= self._max_per_name:
            return (
                f"too many sessions of client {name!r} (max_clients_per_name={self._max_per_name})"
            )
        if session is None:
            session = ClientSession(CLIENT_KEY_PREFIX + route.hex(), route, name, incarnation, now)
        else:
            self.close(session)
        self._per_name[name] = self._per_name.get(name, 0) + 1
        session.name, session.incarnation, session.last_heard = name, incarnation, now
        self._sessions[route] = session
        self._routes[(name, incarnation)] = route
        return session, replaced

    def heard(self, session: ClientSession, now: float) -> None:
        """Any valid frame of the client keeps its session."""
        session.last_heard = now
        self._sessions[session.route] = self._sessions.pop(session.route)  # most recent last

    def close(self, session: ClientSession) -> None:
        if self._sessions.pop(session.route, None) is not None:
            self._forget(session)

    def _forget(self, session: ClientSession) -> None:
        """Uncount a session taken out of ``_sessions``."""
        self._uncount(session.name)
        if self._routes.get((session.name, session.incarnation)) == session.route:
            del self._routes[(session.name, session.incarnation)]

    def _uncount(self, name: str) -> None:
        left = self._per_name[name] - 1
        if left:
            self._per_name[name] = left
        else:
            del self._per_name[name]

    def expire(self, now: float) -> list[ClientSession]:
        """Forget and return the sessions idle for more than ``idle_after`` seconds."""
        expired: list[ClientSession] = []
        for session in list(self._sessions.values()):
            if now - session.last_heard <= self._idle_after:
                break  # ordered by last frame: the rest are fresher
            expired.append(self._sessions.pop(session.route))
            self._forget(session)
        return expired
