"""Cluster: joins one ActorSystem to others through its Transport.

Paths on a node (``_paths``): ``$system`` (this module: step requests, remote
spawn, ping, and what clients ask: submit a run, a run's state, the runs),
``$locks``, ``$run/<run_id>`` (the mailbox of a run coordinator, for results
and events of its remote steps), and any other path names an
actor spawned with ``ActorSystem.spawn(..., name=path)``. Step messages are
decoded here (``_messages``), so a coordinator only ever gets typed ones.

Member events become ``NodeUp`` / ``NodeDown`` events on the system's bus, and
every run coordinator is told when a node is lost, so it re-places the steps it
had there.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pykka

from actors import EventBus, LockGrant, NodePool
from actors import events as ev
from runtime.cluster._local import LocalNode
from runtime.cluster._locks import lock_message
from runtime.cluster._messages import (
    CancelStep,
    EndRun,
    NodeLost,
    RunStep,
    StepOutcome,
    event_from_wire,
    is_step_event,
)
from runtime.cluster._paths import LOCKS_PATH, RUN_PREFIX, SYSTEM_PATH
from runtime.cluster._refs import ask_into
from runtime.cluster._registry import Registry
from runtime.cluster._step_host import HostedSteps, StepHost
from runtime.cluster._wire import require
from runtime.workflow import NodeLoad, RoundRobin
from transport import (
    ActorNotFound,
    Address,
    MemberEvent,
    OutboxFull,
    ProtocolError,
    RateLimitedLog,
    Reply,
    Security,
    Transport,
    TransportSettings,
)

__all__ = ["Cluster", "ClusterSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    """How a node meets its peers: where it listens, its keys, and the transport's timing.

    Without ``security`` the transport refuses to start unless ``plaintext``
    is set and every endpoint is loopback.
    """

    listen: str | None = None
    security: Security | None = None
    plaintext: bool = False
    transport: TransportSettings = field(default_factory=TransportSettings)


class Cluster:
    """The ``MessageHandler`` of one node, and its placement of remote steps.

    ``local`` answers what peers ask of this node (named actors, run
    coordinators, spawn, locks, stats, control); ``hosted`` is told of the
    steps this node runs for other coordinators (its metrics).
    """

    def __init__(
        self,
        name: str,
        *,
        settings: ClusterSettings,
        bus: EventBus,
        registry: Registry,
        pool: NodePool,
        local: LocalNode,
        hosted: HostedSteps | None = None,
    ) -> None:
        self.name = name
        self._bus = bus
        self._registry = registry
        self._local = local
        self.transport = Transport(
            name,
            listen=settings.listen,
            handler=self,
            security=settings.security,
            allow_plaintext=settings.plaintext,
            settings=settings.transport,
        )
        self.host = StepHost(name, self.transport, registry, pool, hosted)
        self._round_robin = RoundRobin()  # shared by every run without its own strategy
        self._log = RateLimitedLog(log)  # per-message warnings, one per reason every 5 s
        # named actors delivered to before (path -> ref), for the transport's fast path
        self._known: dict[str, pykka.ActorRef[Any]] = {}
        self._lock = threading.Lock()
        self._placed: dict[str, set[str]] = {}  # run id -> nodes its steps were sent to

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
        return self._round_robin.choose("", [NodeLoad(n) for n in self.candidates(exclude)])

    def send_step(self, node: str, request: RunStep) -> None:
        with self._lock:
            self._placed.setdefault(request.run, set()).add(node)
        self.transport.tell(Address(node, SYSTEM_PATH), request.encode())

    def spawn_on(
        self, node: str, class_name: str, args: Sequence[Any], name: str, timeout: float
    ) -> Address:
        """Ask ``node`` to start its registered actor class ``class_name`` as ``name``."""
        future = self.transport.ask(
            Address(node, SYSTEM_PATH),
            {"op": "spawn", "class": class_name, "args": list(args), "name": name},
            timeout=timeout,
        )
        address: Address = future.result(timeout + 1.0)
        return address

    def cancel_step(self, node: str, run_id: str, step: str) -> None:
        self._tell_quietly(node, CancelStep(run_id, step))

    def end_run(self, node: str, run_id: str) -> None:
        with self._lock:
            self._placed.pop(run_id, None)
        self._tell_quietly(node, EndRun(run_id))

    def _tell_quietly(self, node: str, message: CancelStep | EndRun) -> None:
        try:
            self.transport.tell(Address(node, SYSTEM_PATH), message.encode())
        except Exception as exc:  # noqa: BLE001 - best effort: the node may be gone
            log.debug("%s to %s not sent: %s", message.OP, node, exc)

    # -- MessageHandler ---------------------------------------------------------------------

    def deliver(self, sender: str, target: str, message: Any, reply: Reply | None) -> None:
        if target == SYSTEM_PATH:
            self._system(sender, message, reply)
        elif target == LOCKS_PATH:
            self._locks(message, reply)
        elif target.startswith(RUN_PREFIX):
            self._to_run(target[len(RUN_PREFIX) :], message, sender)
        else:
            ref = self._local.named(target)
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

    def log_suppressed(self) -> dict[str, int]:
        """Per-message log lines of this cluster member rate-limited to DEBUG, by key
        (the transport counts its own: ``TransportStats.log_suppressed``)."""
        counts = dict(self._log.suppressed())
        for key, count in self.host.log_suppressed().items():
            counts[key] = counts.get(key, 0) + count
        return counts

    def _system(self, sender: str, message: Any, reply: Reply | None) -> None:
        request = require(message, {"op": str}, "system message")
        handler = self._SYSTEM_OPS.get(request["op"])
        if handler is None:
            raise ProtocolError(f"unknown system operation {request['op']!r} from {sender}")
        answer = handler(self, sender, request)
        if reply is not None:
            reply.ok(answer)

    # Each ``$system`` operation: (self, sender, request) -> the answer to an ask.

    def _op_run_step(self, sender: str, request: dict[str, Any]) -> Any:
        self.host.run_step(sender, RunStep.decode(request))

    def _op_cancel_step(self, sender: str, request: dict[str, Any]) -> Any:
        self.host.cancel(CancelStep.decode(request))

    def _op_end_run(self, sender: str, request: dict[str, Any]) -> Any:
        self.host.end_run(EndRun.decode(request))

    def _op_spawn(self, sender: str, request: dict[str, Any]) -> Any:
        spec = require(request, {"class": str, "args": list, "name": str}, "spawn")
        cls = self._registry.actor(spec["class"], node=self.name)
        self._local.spawn(cls, spec["args"], spec["name"])
        return Address(self.name, spec["name"])

    def _op_stats(self, sender: str, request: dict[str, Any]) -> Any:
        return self._local.stats()

    def _op_control(self, sender: str, request: dict[str, Any]) -> Any:
        spec = require(request, {"run": str, "action": str}, "control")
        return self._local.control(spec["run"], spec["action"])

    def _op_submit(self, sender: str, request: dict[str, Any]) -> Any:
        spec = require(request, {"workflow": str, "ctx": bytes}, "submit")
        run_id = request.get("run")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ProtocolError(f"submit: field 'run' must be a non-empty str or nil: {run_id!r}")
        return {"run": self._local.submit(spec["workflow"], spec["ctx"], run_id)}

    def _op_run(self, sender: str, request: dict[str, Any]) -> Any:
        return self._local.run_info(require(request, {"run": str}, "run")["run"])

    def _op_runs(self, sender: str, request: dict[str, Any]) -> Any:
        return self._local.run_list()

    def _op_node_lost(self, sender: str, request: dict[str, Any]) -> Any:
        # Posted by _on_member through this node's own dispatch queue (see there).
        if sender != self.name:
            raise ProtocolError(f"node_lost from {sender}: only this node may send it")
        self._tell_coordinators(NodeLost.decode(request))

    def _op_ping(self, sender: str, request: dict[str, Any]) -> Any:
        return "pong"

    _SYSTEM_OPS: ClassVar[dict[str, Callable[[Cluster, str, dict[str, Any]], Any]]] = {
        RunStep.OP: _op_run_step,
        CancelStep.OP: _op_cancel_step,
        EndRun.OP: _op_end_run,
        "spawn": _op_spawn,
        "stats": _op_stats,
        "control": _op_control,
        "submit": _op_submit,
        "run": _op_run,
        "runs": _op_runs,
        NodeLost.OP: _op_node_lost,
        "ping": _op_ping,
    }

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
        self._local.lock_manager().tell(command)

    def _to_run(self, run_id: str, message: Any, sender: str) -> None:
        if is_step_event(message):
            with self._lock:
                placed = sender in self._placed.get(run_id, ())
            if not placed:  # only a node running one of the run's steps may speak for it
                self._log.warning(
                    "foreign_event",
                    "event for run %s from %s dropped (no step there)",
                    run_id,
                    sender,
                    peer=sender,
                )
                return
            self._bus.emit(event_from_wire(message))
            return
        outcome = StepOutcome.decode(message, run=run_id, sender=sender)
        ref = self._local.coordinator(run_id)
        if ref is None:
            log.info("result for run %s dropped: the run is not active here", run_id)
            return
        ref.tell(outcome)

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
        # Never dropped: a lost notice would leave the runs waiting for the dead node's
        # steps forever. If the queue stays full for send_timeout, the coordinators are
        # told directly (this thread must not stall longer: ask callbacks run on it);
        # a result of that node still queued then arrives after its step was re-placed
        # and is dropped as not from the step's node (the step runs again: at-least-once).
        notice = NodeLost(event.node, event.status)
        try:
            self.transport.tell(Address(self.name, SYSTEM_PATH), notice.encode())
        except OutboxFull:
            log.warning("node_lost of %s: dispatch queue full; telling runs directly", event.node)
            self._tell_coordinators(notice)
        except Exception as exc:  # noqa: BLE001 - closing: nothing left to re-place
            log.debug("node_lost of %s not queued: %s", event.node, exc)

    def _tell_coordinators(self, message: NodeLost) -> None:
        for ref in self._local.coordinators():
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
