"""``ClientTransport``: talk to a cluster's members without becoming one (the client role).

A client connects one DEALER per member it talks to and says ``hello`` with
``{"role": "client", "incarnation": int}``; the member keeps a bounded session
for the connection and answers over it (its ROUTER sends to the connection's
routing id, see ``_clients``). So a client needs no listen address, takes no
place in any member table, is never gossiped nor placed on, and with CURVE
authenticates with its own key pair (its name is its key's name, allowlisted
like a member's). It heartbeats each member every ``CLIENT_HEARTBEAT`` seconds
so its session outlives idle waits, and says ``leave`` on ``close``.

A member that restarts (same address) has forgotten the session: the
client's DEALER reconnects on its own, and the client says hello again as soon
as that new connection's handshake is done (a socket monitor tells the thread),
so later asks are answered. Frames the DEALER had queued while it was cut off
reach the member before that hello and are dropped there; their asks time out.

Thread: ``actorflow-client-<name>`` owns every socket; API threads hand it
frames over an inproc PUSH socket (under a lock), as the member's I/O loop does.
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
import threading
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from transport._envelope import (
    ROLE_CLIENT,
    Envelope,
    Kind,
    decode_envelope,
    encode_envelope,
    validate_node_name,
)
from transport._errors import AskTimeout, NameInUse, NodeDown, ProtocolError, RemoteError
from transport._reply import error_from_wire, new_id_counter
from transport._security import Security, check_endpoint
from transport._settings import DEFAULT_SETTINGS, TransportSettings
from transport._sockets import connect_dealer

__all__ = ["CLIENT_HEARTBEAT", "ClientTransport"]

log = logging.getLogger(__name__)

CLIENT_HEARTBEAT = 5.0  # seconds between a client's heartbeats to each member it talks to
_POLL_MS = 50
_RECONNECT_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED


class _Link:
    """(Client thread) A member's DEALER and whether its connection dropped since the last
    handshake."""

    __slots__ = ("address", "dealer", "dropped")

    def __init__(self, address: str, dealer: zmq.Socket[Any]) -> None:
        self.address, self.dealer, self.dropped = address, dealer, False


class _Pending:
    __slots__ = ("deadline", "future", "node")

    def __init__(self, future: concurrent.futures.Future[Any], node: str | None, deadline: float):
        self.future, self.node, self.deadline = future, node, deadline


class ClientTransport:
    """A client of a cluster: asks and tells its members, is never one. See the module docstring.

    Args:
        name: the client's name (node-name rules; with CURVE, the name of its key pair).
        security: CURVE keys and allowlist (``load_security(keys, name)``), or None.
        allow_plaintext: permit plaintext, to loopback endpoints only.
        settings: socket options and codec limits.
    """

    def __init__(
        self,
        name: str,
        *,
        security: Security | None = None,
        allow_plaintext: bool = False,
        settings: TransportSettings = DEFAULT_SETTINGS,
    ) -> None:
        self.name = validate_node_name(name, "client name")
        if security is not None and security.name != name:
            raise ValueError(f"security keys belong to {security.name!r}, not {name!r}")
        self.incarnation = secrets.randbits(62) + 1
        self._security = security
        self._allow_plaintext = allow_plaintext
        self._settings = settings
        self._ids = new_id_counter()
        self._lock = threading.Lock()  # guards _pending, _welcomed, _members, _push
        self._pending: dict[int, _Pending] = {}
        self._welcomed: dict[str, str] = {}  # member name -> address it welcomed us at
        self._members: dict[str, tuple[str, str]] = {}  # name -> (address, status), last welcome
        self._context: zmq.Context[Any] = zmq.Context()
        self._endpoint = f"inproc://actorflow-client-{id(self):x}"
        self._closed = False
        self._started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"actorflow-client-{name}", daemon=True
        )
        self._thread.start()
        self._started.wait(5.0)
        self._push: zmq.Socket[Any] | None = self._context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(self._endpoint)

    # -- API -------------------------------------------------------------------------------

    def connect(self, seed: str, *, timeout: float = 10.0) -> str:
        """Say hello to ``seed`` (``name@tcp://host:port``; plaintext also ``tcp://host:port``)
        and learn the members it lists; returns the seed's node name.

        Raises:
            ValueError: a malformed seed, or plaintext that was not allowed.
            NameInUse: the seed refused the hello: this name is a member's.
            Overloaded: the seed holds as many client sessions as it may (``max_clients``).
            RemoteError: the seed refused the hello for another reason.
            NodeDown: no answer within ``timeout`` (the seed is not up, or with CURVE
                it refused this client's key: the key must be on its allowlist).
        """
        name, address = self._parse_seed(seed)
        return self._hello(name, address, timeout, what=f"seed {seed!r}")

    def members(self) -> dict[str, tuple[str, str]]:
        """The members (name -> (address, status)) the last welcome listed."""
        with self._lock:
            return dict(self._members)

    def connected(self) -> list[str]:
        """The members this client holds a session with."""
        with self._lock:
            return sorted(self._welcomed)

    def ask(
        self, node: str, path: str, message: Any, *, timeout: float
    ) -> concurrent.futures.Future[Any]:
        """Ask ``path`` on member ``node``; connects (hello) to it first if needed.

        The future fails with ``ActorNotFound``, ``RemoteError``, ``AskTimeout`` or
        ``NodeDown`` (the member is unknown or did not welcome this client).
        """
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            address = self._ensure(node, timeout)
            message_id = next(self._ids)
            frame = self._encode(Kind.ASK, message_id, path, message)
        except Exception as exc:  # noqa: BLE001 - every failure belongs on the future
            future.set_exception(exc)
            return future
        self._expect(message_id, future, node, timeout)
        self._send(address, frame)
        return future

    def tell(self, node: str, path: str, message: Any, *, timeout: float = 5.0) -> None:
        """Tell ``path`` on member ``node``; delivery is not confirmed."""
        address = self._ensure(node, timeout)
        self._send(address, self._encode(Kind.TELL, next(self._ids), path, message))

    def close(self, timeout: float = 2.0) -> None:
        """Say ``leave`` to every member with a session (waiting up to ``timeout`` for their
        acknowledgements), then stop the thread and close every socket. Idempotent."""
        with self._lock:
            if self._closed:
                return
            welcomed = dict(self._welcomed)
        leaves = []
        for node, address in welcomed.items():
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            message_id = next(self._ids)
            self._expect(message_id, future, node, timeout)
            self._send(address, self._encode(Kind.LEAVE, message_id, "", None))
            leaves.append(future)
        concurrent.futures.wait(leaves, timeout)
        with self._lock:
            self._closed = True
            push, self._push = self._push, None
            if push is not None:
                try:
                    push.send(b"stop", zmq.NOBLOCK)
                finally:
                    push.close(linger=100)
        self._thread.join(timeout + 1.0)
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for entry in pending:
            _complete(entry.future, NodeDown("client closed"))
        if not self._thread.is_alive():
            self._context.term()

    def __enter__(self) -> ClientTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals (API threads) -----------------------------------------------------------

    def _parse_seed(self, seed: str) -> tuple[str | None, str]:
        name, sep, address = seed.rpartition("@") if "@" in seed else (None, "", seed)
        if sep and name is not None:
            validate_node_name(name, f"seed {seed!r} node name")
        elif self._security is not None:
            raise ValueError(f"with CURVE a seed must be 'name@tcp://host:port', got {seed!r}")
        check_endpoint(
            address,
            what="seed",
            secured=self._security is not None,
            allow_plaintext=self._allow_plaintext,
        )
        return (name or None), address

    def _ensure(self, node: str, timeout: float) -> str:
        with self._lock:
            address = self._welcomed.get(node)
            known = self._members.get(node)
        if address is not None:
            return address
        if known is None or known[1] != "up":
            raise NodeDown(f"node {node} is {known[1] if known else 'unknown'} (no session)")
        self._hello(node, known[0], timeout, what=f"member {node!r}")
        return known[0]

    def _hello(self, name: str | None, address: str, timeout: float, *, what: str) -> str:
        message_id = next(self._ids)
        body = {"role": ROLE_CLIENT, "incarnation": self.incarnation}
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._expect(message_id, future, name, timeout)
        self._command(b"open", address.encode(), (name or "").encode())
        self._send(address, self._encode(Kind.HELLO, message_id, "", body))
        try:
            sender, entries = future.result(timeout + 1.0)
        except AskTimeout:
            hint = " (with CURVE: is this client's key on its allowlist?)" if self._security else ""
            raise NodeDown(f"{what} did not answer within {timeout}s{hint}") from None
        except RemoteError as exc:
            if exc.type_name == "runtime.NameInUse":
                raise NameInUse(f"{what} refused client {self.name!r}: {exc.message}") from None
            raise
        self._welcome(sender, entries, address, what)
        return str(sender)

    def _welcome(
        self, sender: Any, entries: Any, address: str, what: str, *, again: bool = False
    ) -> None:
        """A member's ``members`` answer to our hello: hold the session, learn the members
        (``again``, a member back from a restart that may list only itself: forget none)."""
        own = [entry for entry in entries if entry[0] == sender]
        if not own or own[0][2] != "up":
            raise ProtocolError(f"{what}: its welcome does not list it as up")
        listed = {entry[0]: (entry[1], entry[2]) for entry in entries}
        with self._lock:
            self._welcomed[sender] = address
            self._members = {**self._members, **listed} if again else listed

    def _hello_again(self, address: str, dealer: zmq.Socket[Any]) -> None:
        """(Client thread) A member's connection came back: say hello on it again."""
        with self._lock:
            names = [name for name, at in self._welcomed.items() if at == address]
        if not names:
            return  # no session was held there (a first hello is on its way)
        name, message_id = names[0], next(self._ids)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._expect(message_id, future, name, self._settings.send_timeout)

        def welcomed(done: concurrent.futures.Future[Any]) -> None:
            try:
                sender, entries = done.result()
                self._welcome(sender, entries, address, f"member {name!r}", again=True)
            except Exception as exc:  # noqa: BLE001 - logged: the next ask reports it
                log.warning("client %s: hello again to %s failed: %s", self.name, name, exc)
            else:
                log.info("client %s: %s came back; its session is open again", self.name, name)

        future.add_done_callback(welcomed)
        body = {"role": ROLE_CLIENT, "incarnation": self.incarnation}
        _send_quietly(dealer, self._encode(Kind.HELLO, message_id, "", body))

    def _encode(self, kind: Kind, message_id: int, target: str, body: Any) -> bytes:
        envelope = Envelope(kind, message_id, 0, self.name, target, body)
        return encode_envelope(envelope, self._settings.limits)

    def _expect(
        self,
        message_id: int,
        future: concurrent.futures.Future[Any],
        node: str | None,
        timeout: float,
    ) -> None:
        with self._lock:
            if self._closed:
                _complete(future, NodeDown("client closed"))
                return
            self._pending[message_id] = _Pending(future, node, time.monotonic() + timeout)

    def _send(self, address: str, frame: bytes) -> None:
        self._command(b"send", address.encode(), frame)

    def _command(self, *parts: bytes) -> None:
        with self._lock:
            if self._push is None:
                raise NodeDown("client closed")
            self._push.send_multipart(parts)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        commands: zmq.Socket[Any] = self._context.socket(zmq.PULL)
        commands.setsockopt(zmq.LINGER, 0)
        commands.bind(self._endpoint)
        self._started.set()
        dealers: dict[str, zmq.Socket[Any]] = {}
        monitors: dict[zmq.Socket[Any], _Link] = {}
        poller = zmq.Poller()
        poller.register(commands, zmq.POLLIN)
        next_beat = time.monotonic() + CLIENT_HEARTBEAT
        try:
            while True:
                ready = dict(poller.poll(_POLL_MS))
                if commands in ready and self._drain_commands(commands, dealers, poller, monitors):
                    return
                for dealer in list(dealers.values()):
                    if dealer in ready:
                        self._drain_dealer(dealer)
                for monitor, link in list(monitors.items()):
                    if monitor in ready:
                        self._drain_monitor(monitor, link)
                now = time.monotonic()
                self._expire(now)
                if now >= next_beat:
                    next_beat = now + CLIENT_HEARTBEAT
                    with self._lock:
                        addresses = list(self._welcomed.values())
                    for address in addresses:
                        frame = self._encode(Kind.HEARTBEAT, next(self._ids), "", self.incarnation)
                        _send_quietly(dealers.get(address), frame)
        except Exception:
            log.exception("client %s: I/O thread crashed", self.name)
        finally:
            for monitor, link in monitors.items():
                link.dealer.disable_monitor()
                monitor.close(linger=0)
            for dealer in dealers.values():
                dealer.close(linger=int(self._settings.linger * 1000))
            commands.close(linger=0)

    def _drain_commands(
        self,
        commands: zmq.Socket[Any],
        dealers: dict[str, zmq.Socket[Any]],
        poller: zmq.Poller,
        monitors: dict[zmq.Socket[Any], _Link],
    ) -> bool:
        while True:
            try:
                parts = commands.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            verb = parts[0]
            if verb == b"stop":
                return True
            address = parts[1].decode()
            if verb == b"open" and address not in dealers:
                server = parts[2].decode() or None
                dealer = connect_dealer(
                    self._context, self._settings, self._security, address, server
                )
                if dealer is not None:
                    dealers[address] = dealer
                    poller.register(dealer, zmq.POLLIN)
                    monitor = dealer.get_monitor_socket(_RECONNECT_EVENTS)
                    monitors[monitor] = _Link(address, dealer)
                    poller.register(monitor, zmq.POLLIN)
            elif verb == b"send":
                _send_quietly(dealers.get(address), parts[2])

    def _drain_dealer(self, dealer: zmq.Socket[Any]) -> None:
        while True:
            try:
                data = dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                envelope = decode_envelope(data, self._settings.limits)
                items = (
                    [decode_envelope(item, self._settings.limits) for item in envelope.body]
                    if envelope.kind is Kind.BATCH
                    else [envelope]
                )
            except ProtocolError as exc:
                log.warning("client %s: dropped a malformed frame: %s", self.name, exc)
                continue
            for item in items:
                self._on_answer(item)

    def _drain_monitor(self, monitor: zmq.Socket[Any], link: _Link) -> None:
        """A member's connection dropped, or a handshake on it succeeded: after a drop,
        that is the member back (restarted, or the network healed): hello again."""
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                link.dropped = True
            elif link.dropped:
                link.dropped = False
                self._hello_again(link.address, link.dealer)

    def _on_answer(self, envelope: Envelope) -> None:
        if envelope.kind not in (Kind.REPLY, Kind.ERROR, Kind.MEMBERS):
            return  # a member sends a client nothing else
        with self._lock:
            entry = self._pending.get(envelope.correlation_id)
            if entry is None or (entry.node is not None and entry.node != envelope.sender):
                return
            del self._pending[envelope.correlation_id]
        if envelope.kind is Kind.ERROR:
            _complete(entry.future, error_from_wire(envelope.body))
        elif envelope.kind is Kind.MEMBERS:
            entry.future.set_result((envelope.sender, envelope.body))
        else:
            entry.future.set_result(envelope.body)

    def _expire(self, now: float) -> None:
        with self._lock:
            expired = [(i, e) for i, e in self._pending.items() if now >= e.deadline]
            for message_id, _ in expired:
                del self._pending[message_id]
        for _, entry in expired:
            _complete(entry.future, AskTimeout(f"no answer from {entry.node or 'seed'} in time"))


def _complete(future: concurrent.futures.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _send_quietly(dealer: zmq.Socket[Any] | None, frame: bytes) -> None:
    if dealer is None:
        return
    try:
        dealer.send(frame, zmq.NOBLOCK)
    except zmq.ZMQError as exc:  # HWM full or closing: the asker's timeout reports it
        log.debug("client send failed: %s", exc)
