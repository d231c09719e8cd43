"""Client sessions: programs connected to this member that said hello with the client role.

A client is not a member. It connects a DEALER to this node's ROUTER, says
``hello`` with ``{"role": "client", "incarnation": int}`` (no address: it
does not listen), and is answered over that same connection, by the ROUTER,
to the connection's routing id. It takes no place in the member table, is
never gossiped, never heartbeated and never a placement target; a member
never asks it anything.

What a session holds is bounded: at most ``max_clients`` sessions (a hello
past that is refused), each forgotten ``idle_after`` seconds after its last
frame. Sessions are keyed by routing id (one per connection), so two clients
may share a name (with CURVE: one key, several programs); the outbox reaches a
session under its ``key`` (``/client/<routing id hex>``), which can never be a
node name (node names have no ``/``).

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
        idle_after: seconds without a frame after which a session is forgotten.
    """

    def __init__(self, max_clients: int, idle_after: float) -> None:
        self._max = max_clients
        self._idle_after = idle_after
        self._sessions: dict[bytes, ClientSession] = {}  # least recently heard first

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, route: bytes) -> ClientSession | None:
        return self._sessions.get(route)

    def open(self, route: bytes, name: str, incarnation: int, now: float) -> ClientSession | None:
        """A hello with the client role on connection ``route``: the (new or renewed)
        session, or None when ``max_clients`` live sessions leave no room."""
        session = self._sessions.pop(route, None)
        if session is None:
            if len(self._sessions) >= self._max:
                return None
            session = ClientSession(CLIENT_KEY_PREFIX + route.hex(), route, name, incarnation, now)
        session.name, session.incarnation, session.last_heard = name, incarnation, now
        self._sessions[route] = session
        return session

    def heard(self, session: ClientSession, now: float) -> None:
        """Any valid frame of the client keeps its session."""
        session.last_heard = now
        self._sessions[session.route] = self._sessions.pop(session.route)  # most recent last

    def close(self, session: ClientSession) -> None:
        self._sessions.pop(session.route, None)

    def expire(self, now: float) -> list[ClientSession]:
        """Forget and return the sessions idle for more than ``idle_after`` seconds."""
        expired: list[ClientSession] = []
        for session in list(self._sessions.values()):
            if now - session.last_heard <= self._idle_after:
                break  # ordered by last frame: the rest are fresher
            expired.append(self._sessions.pop(session.route))
        return expired
