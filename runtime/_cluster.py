"""Cluster: joins one ActorSystem to others through its Transport.

Paths on a node: ``$system`` (this module: step requests, remote spawn,
ping), ``$run/<run_id>`` (the mailbox of a run coordinator, for results and
events of its remote steps), and any other path names an actor spawned with
``ActorSystem.spawn(..., name=path)``.

Member events become ``NodeUp`` / ``NodeDown`` events on the system's bus, and
every run coordinator is told when a node is lost, so it re-places the steps it
had there.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from actors import EventBus, LockGrant, NodePool
from actors import events as ev
from runtime._locks import lock_message
from runtime._registry import Registry
from runtime._remote import ask_into
from runtime._wire import NodeLost, RemoteReport, event_from_wire, require
from runtime._worker import StepHost
from transport import (
    ActorNotFound,
    Address,
    MemberEvent,
    ProtocolError,
    Reply,
    Security,
    Transport,
    TransportSettings,
)

__all__ = ["Cluster"]

log = logging.getLogger(__name__)

SYSTEM_PATH = "$system"
LOCKS_PATH = "$locks"
RUN_PREFIX = "$run/"


class Cluster:
    """The ``MessageHandler`` of one node, and its placement of remote steps."""

    def __init__(
        self,
        name: str,
        *,
        listen: str | None,
        security: Security | None,
        plaintext: bool,
        settings: TransportSettings,
        bus: EventBus,
        registry: Registry,
        pool: NodePool,
        named: Callable[[str], pykka.ActorRef[Any] | None],
        coordinator: Callable[[str], pykka.ActorRef[Any] | None],
        coordinators: Callable[[], list[pykka.ActorRef[Any]]],
        spawn: Callable[..., Any],
        lock_manager: Callable[[], pykka.ActorRef[Any]],
        stats: Callable[[], dict[str, Any]],
        control: Callable[[str, str], bool],
    ) -> None:
        self.name = name
        self._bus = bus
        self._registry = registry
        self._named = named
        self._coordinator = coordinator
        self._coordinators = coordinators
        self._spawn = spawn
        self._lock_manager = lock_manager
        self._stats = stats
        self._control = control
        self.transport = Transport(
            name,
            listen=listen,
            handler=self,
            security=security,
            allow_plaintext=plaintext,
            settings=settings,
        )
        self.host = StepHost(name, self.transport, registry, pool)
        self._turn = itertools.count()
        # named actors delivered to before (path -> ref), for the transport's fast path
        self._known: dict[str, pykka.ActorRef[Any]] = {}
        self._lock = threading.Lock()

    def start(self, join: Sequence[str], timeout: float = 10.0) -> None:
        self.transport.start()
        self.transport.subscribe(self._on_member)
        if join:
            self.transport.join(join, timeout=timeout)

    @property
    def address(self) -> str | None:
        return self.transport.address

    # -- placement ------------------------------------------------------------------------

    def live_nodes(self) -> list[str]:
        return sorted(n for n, m in self.transport.members().items() if m.status == "up")

    def candidates(self, exclude: frozenset[str] = frozenset()) -> list[str]:
        """Where an unpinned step may run: the live peers, or this node when there are none."""
        peers = [n for n in self.live_nodes() if n != self.name and n not in exclude]
        return peers or [self.name]

    def place(self, pinned: str | None, exclude: frozenset[str] = frozenset()) -> str:
        """Where a step runs: ``pinned``, else round-robin over the candidates."""
        if pinned is not None:
            return pinned
        nodes = self.candidates(exclude)
        with self._lock:
            return nodes[next(self._turn) % len(nodes)]

    def send_step(self, node: str, request: dict[str, Any]) -> None:
        self.transport.tell(Address(node, SYSTEM_PATH), {"op": "run_step", **request})

    def cancel_step(self, node: str, run_id: str, key: str) -> None:
        self._tell_quietly(node, {"op": "cancel_step", "run": run_id, "key": key})

    def end_run(self, node: str, run_id: str) -> None:
        self._tell_quietly(node, {"op": "end_run", "run": run_id})

    def _tell_quietly(self, node: str, message: dict[str, Any]) -> None:
        try:
            self.transport.tell(Address(node, SYSTEM_PATH), message)
        except Exception as exc:  # noqa: BLE001 - best effort: the node may be gone
            log.debug("%s to %s not sent: %s", message.get("op"), node, exc)

    # -- MessageHandler ---------------------------------------------------------------------

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        if target == SYSTEM_PATH:
            self._system(sender, message, reply)
        elif target == LOCKS_PATH:
            self._locks(message, reply)
        elif target.startswith(RUN_PREFIX):
            self._to_run(target[len(RUN_PREFIX) :], message)
        else:
            ref = self._named(target)
            if ref is None or not ref.is_alive():
                self._known.pop(target, None)
                raise ActorNotFound(f"no actor at {self.name}/{target}")
            if reply is None:
                ref.tell(message)
            else:
                ask_into(ref, message, reply)
            self._known[target] = ref  # after the put: a later message cannot overtake it

    def deliver_nowait(self, sender: str, target: str, message: Any, reply: Reply | None) -> bool:
        """The transport's I/O-thread fast path: a put into a named actor's mailbox.

        Only for a named actor already delivered to (``_known``, a plain dict
        read: no lock the system's ``spawn`` holds while user code runs); all
        else, and a stopped actor, goes to ``deliver`` on the dispatch thread.
        """
        ref = self._known.get(target)
        if ref is None:
            return False
        try:
            if reply is None:
                ref.tell(message)
            else:
                ask_into(ref, message, reply)
        except pykka.ActorDeadError:
            self._known.pop(target, None)
            return False
        return True

    def _system(self, sender: str, message: Any, reply: Reply | None) -> None:
        request = require(message, {"op": str}, "system message")
        op = request["op"]
        if op == "run_step":
            self.host.run_step(sender, request)
        elif op == "cancel_step":
            self.host.cancel(request)
        elif op == "end_run":
            self.host.end_run(request)
        elif op == "spawn":
            spec = require(request, {"class": str, "args": list, "name": str}, "spawn")
            cls = self._registry.actor(spec["class"], node=self.name)
            self._spawn(cls, *spec["args"], name=spec["name"])
            if reply is not None:
                reply.ok(Address(self.name, spec["name"]))
        elif op == "stats":
            if reply is not None:
                reply.ok(self._stats())
        elif op == "control":
            spec = require(request, {"run": str, "action": str}, "control")
            applied = self._control(spec["run"], spec["action"])
            if reply is not None:
                reply.ok(applied)
        elif op == "ping":
            if reply is not None:
                reply.ok("pong")
        else:
            raise ProtocolError(f"unknown system operation {op!r} from {sender}")

    def _locks(self, message: Any, reply: Reply | None) -> None:
        request = require(message, {"op": str, "name": str}, "lock request")
        if reply is None:
            raise ProtocolError("lock requests must be asks")
        answer = reply

        def respond(value: Any) -> None:
            if isinstance(value, BaseException):
                answer.error(value)
            elif isinstance(value, LockGrant):
                answer.ok(dataclasses.asdict(value))
            else:
                answer.ok(value)

        fields = {k: v for k, v in request.items() if k != "op"}
        try:
            command = lock_message(request["op"], fields, respond)
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"malformed lock request {request!r}: {exc}") from exc
        self._lock_manager().tell(command)

    def _to_run(self, run_id: str, message: Any) -> None:
        body = require(message, {}, f"message for run {run_id}")
        if "ev" in body:
            self._bus.emit(event_from_wire(body))
            return
        ref = self._coordinator(run_id)
        if ref is None:
            log.info("result for run %s dropped: the run is not active here", run_id)
            return
        ref.tell(RemoteReport(body))

    # -- membership -----------------------------------------------------------------------

    def _on_member(self, event: MemberEvent) -> None:
        if event.status == "up":
            self._bus.emit(ev.NodeUp(event.node))
            return
        self._bus.emit(ev.NodeDown(event.node, event.status))
        for ref in self._coordinators():
            try:
                ref.tell(NodeLost(event.node, event.status))
            except pykka.ActorDeadError:
                continue

    # -- lifecycle -----------------------------------------------------------------------

    def leave(self, drain_timeout: float) -> int:
        """Finish in-flight steps (bounded), then leave; returns how many were unfinished."""
        remaining = self.host.drain(drain_timeout)
        self.transport.leave()
        return remaining

    def close(self, timeout: float = 5.0) -> None:
        self.transport.close(timeout)
