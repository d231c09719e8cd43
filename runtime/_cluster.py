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

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from actors import EventBus, NodePool
from actors import events as ev
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
    ) -> None:
        self.name = name
        self._bus = bus
        self._registry = registry
        self._named = named
        self._coordinator = coordinator
        self._coordinators = coordinators
        self._spawn = spawn
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

    def place(self, pinned: str | None, exclude: frozenset[str] = frozenset()) -> str:
        """Where a step runs: ``pinned``, else round-robin over live peers (self if none)."""
        if pinned is not None:
            return pinned
        peers = [n for n in self.live_nodes() if n != self.name and n not in exclude]
        if not peers:
            return self.name
        with self._lock:
            return peers[next(self._turn) % len(peers)]

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
        elif target.startswith(RUN_PREFIX):
            self._to_run(target[len(RUN_PREFIX) :], message)
        else:
            ref = self._named(target)
            if ref is None or not ref.is_alive():
                raise ActorNotFound(f"no actor at {self.name}/{target}")
            if reply is None:
                ref.tell(message)
            else:
                ask_into(ref, message, reply)

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
        elif op == "node_lost":
            # Posted by _on_member through this node's own dispatch queue (see there).
            if sender != self.name:
                raise ProtocolError(f"node_lost from {sender}: only this node may send it")
            lost = require(request, {"node": str, "status": str}, "node_lost")
            self._tell_coordinators(NodeLost(lost["node"], lost["status"]))
        elif op == "ping":
            if reply is not None:
                reply.ok("pong")
        else:
            raise ProtocolError(f"unknown system operation {op!r} from {sender}")

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
        # Through the dispatch queue, not straight from this notify thread: the
        # results the node sent before it left are queued there already, and its
        # coordinators must get them before NodeLost (which re-places the steps
        # still waiting, and fails those pinned to the node).
        try:
            self.transport.tell(
                Address(self.name, SYSTEM_PATH),
                {"op": "node_lost", "node": event.node, "status": event.status},
            )
        except Exception as exc:  # noqa: BLE001 - closing: nothing left to re-place
            log.debug("node_lost of %s not queued: %s", event.node, exc)

    def _tell_coordinators(self, message: NodeLost) -> None:
        for ref in self._coordinators():
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                continue

    # -- lifecycle -----------------------------------------------------------------------

    def leave(self, drain_timeout: float) -> int:
        """Finish in-flight steps (bounded), then leave; returns how many were unfinished."""
        remaining = self.host.drain(drain_timeout)
        self.transport.leave()
        return remaining

    def close(self, timeout: float = 5.0) -> None:
        self.host.close()
        self.transport.close(timeout)
