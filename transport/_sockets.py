"""Socket construction and the per-peer DEALER links. Used only on the transport's I/O thread.

Every socket gets: a small LINGER (so ``Context.term`` cannot hang on unsent
frames to a dead peer), bounded HWMs, ``ZMQ_MAXMSGSIZE`` (an oversize frame
makes libzmq drop the connection), and a reconnect backoff capped by
``RECONNECT_IVL_MAX`` (a refused peer does not retry every 100 ms forever).
The ROUTER sets ``ROUTER_MANDATORY`` so a send it cannot route raises instead
of vanishing: it sends only to clients (``_clients``), the one case where an
answer goes back over the connection it came on; ``PeerLinks`` reaches a
client under its session key (``route``), as it reaches a peer's DEALER.
Sends are ``NOBLOCK``: they never block the I/O thread. ``send`` drops and
counts a frame a full HWM refuses (heartbeats and gossip: the next one will
do); ``try_send`` reports ``FULL`` instead, so the I/O loop can keep the frame
in a backlog (tells, asks and answers are never dropped for a full HWM) —
except to a client: an answer its full HWM refuses is dropped (``client_full``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from transport._security import ZAP_DOMAIN, Security
from transport._settings import TransportSettings
from transport._stats import Counters

__all__ = ["FAILED", "FULL", "SENT", "PeerLinks", "connect_dealer", "make_router"]

SENT, FULL, FAILED = 0, 1, 2  # outcomes of ``PeerLinks.try_send``
# what a monitored link (a seed while joining) reports: see ``_join_causes``
LINK_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)

log = logging.getLogger(__name__)


def _apply_common(socket: zmq.Socket[Any], settings: TransportSettings) -> None:
    socket.setsockopt(zmq.LINGER, int(settings.linger * 1000))
    socket.setsockopt(zmq.SNDHWM, settings.send_hwm)
    socket.setsockopt(zmq.RCVHWM, settings.receive_hwm)
    socket.setsockopt(zmq.MAXMSGSIZE, settings.limits.max_frame_bytes)
    socket.setsockopt(zmq.RECONNECT_IVL, int(settings.reconnect_interval * 1000))
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, int(settings.reconnect_interval_max * 1000))


def make_router(
    context: zmq.Context[Any], settings: TransportSettings, security: Security | None
) -> zmq.Socket[Any]:
    """The receiving socket (not yet bound). With ``security`` it is a CURVE server."""
    router: zmq.Socket[Any] = context.socket(zmq.ROUTER)
    try:
        _apply_common(router, settings)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if security is not None:
            router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
            router.setsockopt(zmq.CURVE_SERVER, 1)
            router.setsockopt(zmq.CURVE_PUBLICKEY, security.public_key)
            router.setsockopt(zmq.CURVE_SECRETKEY, security.secret_key)
    except zmq.ZMQError:
        router.close(linger=0)
        raise
    return router


def connect_dealer(
    context: zmq.Context[Any],
    settings: TransportSettings,
    security: Security | None,
    address: str,
    server_name: str | None,
    before_connect: Callable[[zmq.Socket[Any]], None] | None = None,
) -> zmq.Socket[Any] | None:
    """A DEALER connected to ``address``, or None (logged) if it cannot be made.

    With CURVE, ``server_name`` must be an allowlisted node: its public key is
    the server key the handshake checks. ``before_connect`` runs on the socket
    just before it connects (to attach a monitor that sees the first events).
    """
    dealer: zmq.Socket[Any] = context.socket(zmq.DEALER)
    try:
        _apply_common(dealer, settings)
        if security is not None:
            server_key = security.public_key_of(server_name) if server_name is not None else None
            if server_key is None:
                log.warning("not connecting to %r at %s: no allowlisted key", server_name, address)
                dealer.close(linger=0)
                return None
            dealer.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            dealer.setsockopt(zmq.CURVE_PUBLICKEY, security.public_key)
            dealer.setsockopt(zmq.CURVE_SECRETKEY, security.secret_key)
        if before_connect is not None:
            before_connect(dealer)
        dealer.connect(address)
    except zmq.ZMQError as exc:
        log.warning("cannot connect to %r at %s: %s", server_name, address, exc)
        dealer.close(linger=0)
        return None
    return dealer


class PeerLinks:
    """One DEALER per peer (plus anonymous links to seeds while joining). I/O thread only.

    Args:
        context: the transport's context.
        settings: socket options.
        security: CURVE client keys, or None for plaintext (loopback only).
        counters: where sends and drops are counted.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        settings: TransportSettings,
        security: Security | None,
        counters: Counters,
    ) -> None:
        self._context = context
        self._settings = settings
        self._security = security
        self._counters = counters
        self._links: dict[str, tuple[str, zmq.Socket[Any]]] = {}
        self._monitors: dict[str, zmq.Socket[Any]] = {}  # key -> monitor of that link
        self._router: zmq.Socket[Any] | None = None
        self._routes: dict[str, bytes] = {}  # client session key -> ROUTER routing id

    def attach_router(self, router: zmq.Socket[Any]) -> None:
        """The node's ROUTER: clients are answered through it (``route``)."""
        self._router = router

    def route(self, key: str, routing_id: bytes) -> None:
        """Reach ``key`` (a client session) through the ROUTER, to ``routing_id``."""
        self._routes[key] = routing_id

    def unroute(self, key: str) -> None:
        self._routes.pop(key, None)

    def routed(self, key: str) -> bool:
        return key in self._routes

    def open(
        self, key: str, address: str, server_name: str | None, *, monitor: bool = False
    ) -> bool:
        """Connect a DEALER under ``key`` to ``address`` (replacing any link under ``key``).

        With CURVE, ``server_name`` must be an allowlisted node: its public key
        is the server key the handshake checks. Returns False (and logs) if the
        link cannot be made. With ``monitor``, ``events(key)`` reports what the
        connection does (refused, handshake failed...).
        """
        self.close(key)
        watched: list[zmq.Socket[Any]] = []

        def watch(dealer: zmq.Socket[Any]) -> None:
            watched.append(dealer.get_monitor_socket(LINK_EVENTS))

        dealer = connect_dealer(
            self._context,
            self._settings,
            self._security,
            address,
            server_name,
            before_connect=watch if monitor else None,
        )
        if dealer is None:
            for socket in watched:
                socket.close(linger=0)
            return False
        if watched:
            self._monitors[key] = watched[0]
        self._links[key] = (address, dealer)
        return True

    def address(self, key: str) -> str | None:
        link = self._links.get(key)
        return link[0] if link is not None else None

    def has(self, key: str) -> bool:
        return key in self._links

    def send(self, key: str, frame: bytes) -> bool:
        """Send without blocking; a missing link or full queue drops and counts the frame."""
        result = self.try_send(key, frame)
        if result == FULL:
            self._counters.dropped("send_queue_full")
        return result == SENT

    def try_send(self, key: str, frame: bytes, messages: int = 1) -> int:
        """Send without blocking: ``SENT``; ``FULL`` (HWM reached, the frame is the caller's
        to keep, not counted); or ``FAILED`` (no link or a socket error: dropped, counted
        as ``messages`` drops, the number of envelopes the frame carries)."""
        link = self._links.get(key)
        if link is None:
            routing_id = self._routes.get(key)
            if routing_id is not None and self._router is not None:
                return self._send_routed(routing_id, frame, messages)
            self._counters.dropped("no_route", messages)
            return FAILED
        try:
            link[1].send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
        except zmq.Again:
            return FULL
        except zmq.ZMQError as exc:
            log.warning("send to %s failed: %s", key, exc)
            self._counters.dropped("send_failed", messages)
            return FAILED
        self._counters.frames_out += 1  # I/O thread only (see Counters)
        return SENT

    def send_routed(self, routing_id: bytes, frame: bytes) -> bool:
        """Send on the ROUTER to a connection with no session (a refused client's hello)."""
        return self._send_routed(routing_id, frame, 1) == SENT

    def _send_routed(self, routing_id: bytes, frame: bytes, messages: int) -> int:
        assert self._router is not None
        try:
            self._router.send_multipart((routing_id, frame), zmq.NOBLOCK)
        except zmq.Again:
            # Never backlogged: a client that does not read its answers must not hold the
            # outbox bound (members' traffic) nor this node's memory. Its answer is lost.
            self._counters.dropped("client_full", messages)
            return FAILED
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the client's connection is gone
            log.debug("send to client connection %s failed: %s", routing_id.hex(), exc)
            self._counters.dropped("no_route", messages)
            return FAILED
        self._counters.frames_out += 1  # I/O thread only (see Counters)
        return SENT

    def events(self, key: str) -> list[tuple[int, int]]:
        """The (event, value) pairs the monitor of link ``key`` saw since the last call."""
        monitor = self._monitors.get(key)
        found: list[tuple[int, int]] = []
        while monitor is not None and len(found) < 100:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            found.append((int(event["event"]), int(event["value"])))
        return found

    def close(self, key: str) -> None:
        link = self._links.pop(key, None)
        if link is not None:
            monitor = self._monitors.pop(key, None)
            if monitor is not None:
                with contextlib.suppress(zmq.ZMQError):
                    link[1].disable_monitor()
                monitor.close(linger=0)
            link[1].close()

    def close_all(self) -> None:
        for key in list(self._links):
            self.close(key)
