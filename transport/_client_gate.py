"""The member's side of the client role: client hellos, their frames, their sessions' expiry.

See ``_clients`` for what a session is. ``ClientGate`` is called by
``NodeProtocol`` with the routing id of the frame it handles: a hello with the
client role opens (or renews) a session and is welcomed over the ROUTER; a
frame on a session's connection is a client's (tells and asks are delivered
and answered over the ROUTER, heartbeats keep the session, ``leave`` ends it).

Thread: I/O thread only (``len`` may be read from any thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from transport._clients import ClientSession, ClientSessions
from transport._envelope import Envelope, Kind
from transport._errors import RemoteError
from transport._membership import Membership
from transport._settings import TransportSettings
from transport._sockets import PeerLinks

__all__ = ["ClientGate"]

log = logging.getLogger(__name__)


class ClientGate:
    """Client sessions of one member and what their frames do. See the module docstring.

    Args:
        name: this node's name.
        settings: ``max_clients`` and ``client_idle_after``.
        membership: the member table (a client may not use a member's name).
        links: where the ROUTER routes to clients are registered.
        encode: ``(kind, body, correlation_id) -> frame`` of this node.
        drop: ``(reason, detail)``: count and log a dropped frame.
        deliver: ``(envelope, reply_to)``: hand a tell or ask to the inbox, its
            answer going to ``reply_to`` (the session's key).
        flush: send what the outbox holds now: the answers the I/O thread queued
            (refusals) must reach a leaving client before its ``leave`` is acked
            and its route goes.
    """

    def __init__(
        self,
        name: str,
        settings: TransportSettings,
        membership: Membership,
        links: PeerLinks,
        *,
        encode: Callable[[Kind, Any, int], bytes],
        drop: Callable[[str, str], None],
        deliver: Callable[[Envelope, str], None],
        flush: Callable[[], None],
    ) -> None:
        self._name = name
        self._sessions = ClientSessions(
            settings.max_clients, settings.max_clients_per_name, settings.client_idle_after
        )
        self._membership = membership
        self._links = links
        self._encode = encode
        self._drop = drop
        self._deliver = deliver
        self._flush = flush

    def __len__(self) -> int:
        return len(self._sessions)

    def hello(self, envelope: Envelope, route: bytes, now: float) -> None:
        """A client said hello on connection ``route``: open (or renew) its session and
        welcome it over the ROUTER, or refuse it there."""
        sender = envelope.sender
        status = self._membership.status(sender)
        if sender == self._name or (status is not None and status != "left"):
            reason = f"node name {sender!r} is a member of the cluster; a client needs its own"
            self._refuse(envelope, route, "runtime.NameInUse", reason)
            return
        opened = self._sessions.open(route, sender, envelope.body["incarnation"], now)
        if isinstance(opened, str):  # no room: why
            self._refuse(envelope, route, "runtime.Overloaded", opened)
            return
        session, replaced = opened
        if replaced is not None:  # the same client, reconnected: its old connection is gone
            self._links.unroute(replaced.key)
        self._links.route(session.key, route)
        entries = self._membership.gossip_entries()
        self._links.send(session.key, self._encode(Kind.MEMBERS, entries, envelope.message_id))

    def frame(self, envelope: Envelope, route: bytes, now: float) -> bool:
        """Handle ``envelope`` if it came on a client's connection; False if it did not."""
        session = self._sessions.get(route)
        if session is None:
            return False
        self._on_client(session, envelope, now)
        return True

    def expire(self, now: float) -> None:
        """Forget the sessions idle past ``client_idle_after``."""
        for session in self._sessions.expire(now):
            self._links.unroute(session.key)
            log.debug("%s: client %s (%s) is forgotten", self._name, session.name, session.key)

    def _refuse(self, hello: Envelope, route: bytes, type_name: str, reason: str) -> None:
        self._drop("refused_client", f"client hello from {hello.sender!r}: {reason}")
        error = RemoteError(type_name, reason, "", self._name)
        self._links.send_routed(route, self._encode(Kind.ERROR, error, hello.message_id))

    def _on_client(self, session: ClientSession, envelope: Envelope, now: float) -> None:
        kind, sender = envelope.kind, envelope.sender
        if sender != session.name:
            self._drop(
                "sender_mismatch",
                f"client {session.name!r} sent a message claiming sender {sender!r}",
            )
            return
        if kind is Kind.HEARTBEAT and envelope.body != session.incarnation:
            self._drop("stale_incarnation", f"heartbeat of client {sender!r}: not its hello's")
            return
        self._sessions.heard(session, now)
        if kind is Kind.TELL or kind is Kind.ASK:
            self._deliver(envelope, session.key)
        elif kind is Kind.LEAVE:
            self._flush()  # its asks refused this turn are answered before the ack
            self._links.send(session.key, self._encode(Kind.REPLY, None, envelope.message_id))
            self._sessions.close(session)
            self._links.unroute(session.key)
        elif kind is not Kind.HEARTBEAT:
            self._drop(
                "not_member",
                f"{kind.value} from client {sender!r}: a client sends tell, ask, heartbeat, leave",
            )
