"""Cluster: joins one ActorSystem to others through its Transport.

Paths on a node (``_paths``): ``$system`` (this module: step requests, remote
spawn, ping, and what clients ask: submit a run, a run's state, the runs),
``$locks``, ``$actors`` (death watch and supervised children, answered by the
system), ``$run/<run_id>`` (the mailbox of a run coordinator, for results
and events of its remote steps, ``_run_mailboxes``), and any other path names an
actor spawned with ``ActorSystem.spawn(..., name=path)``. Step messages are
decoded here (``_messages``), so a coordinator only ever gets typed ones.

Member events become ``NodeUp`` / ``NodeDown`` events on the system's bus, and
every run coordinator is told when a node is lost, so it re-places the steps it
had there.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pykka

from actors import EventBus, LockGrant, NodePool, PermanentError
from actors import events as ev
from runtime.cluster._local import LocalNode
from runtime.cluster._locks import lock_message
from runtime.cluster._messages import (
    CancelStep,
    EndRun,
    NodeLost,
    RunStep,
)
from runtime.cluster._paths import ACTORS_PATH, LOCKS_PATH, RUN_PREFIX, SYSTEM_PATH
from runtime.cluster._refs import ask_into
from runtime.cluster._registry import ACTORS, TASKS, Registry, hint, is_main
from runtime.cluster._run_mailboxes import RunMailboxes
from runtime.cluster._step_host import HostedSteps, StepHost
from runtime.cluster._wire import require
from runtime.workflow import NodeLoad, RoundRobin
from transport import (
    ActorNotFound,
    Address,
    MemberEvent,
    OutboxFull,
    ProtocolError,
    Reply,
    Security,
    Transport,
    TransportSettings,
)

__all__ = ["Cluster", "ClusterSettings", "Unplaceable"]

# $system operations only a member may send (a client's ask of one is a ProtocolError)
_MEMBERS_ONLY = frozenset({RunStep.OP, CancelStep.OP, EndRun.OP, "spawn"})

log = logging.getLogger(__name__)


class Unplaceable(PermanentError):
    """No member can run the step: none registered its task (or the pinned one did not)."""


Unplaceable.__module__ = "runtime"  # named like every other error, whatever its module


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
        self._security = settings.security
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
        # named actors delivered to before (path -> ref), for the transport's fast path
        self._known: dict[str, pykka.ActorRef[Any]] = {}
        self._runs = RunMailboxes(bus, local)  # where remote steps' events and results go
        registry.on_change(self._advertise)

    def _advertise(self) -> None:
        self.transport.advertise(self._registry.capabilities())

    def start(self, join: Sequence[str], timeout: float = 10.0) -> None:
        self._advertise()  # before the first hello: it carries what this node registered
        self.transport.start()
        self.transport.subscribe(self._on_member)
        if join:
            self.transport.join(join, timeout=timeout)

    @property
    def address(self) -> str | None:
        return self.transport.address

    def reload_keys(self) -> tuple[list[str], list[str]]:
        """Re-read the keys directory (see ``Security.reload``); nothing in plaintext."""
        return self._security.reload() if self._security is not None else ([], [])

    # -- placement ------------------------------------------------------------------------

    def live_nodes(self) -> list[str]:
        return sorted(n for n, m in self.transport.members().items() if m.status == "up")

    def holders(self, kind: str, name: str) -> list[str]:
        """Live peers that advertised ``name`` (``kind``: ``tasks`` or ``actors``)."""
        if is_main(name):
            return []  # another process's __main__ is another script
        return sorted(
            node
            for node, member in self.transport.members().items()
            if member.status == "up" and node != self.name and self._has(node, kind, name)
        )

    def _has(self, node: str, kind: str, name: str) -> bool:
        return not is_main(name) and name in self.transport.capabilities(node).get(kind, ())

    def candidates(self, task: str, exclude: frozenset[str] = frozenset()) -> list[str]:
        """Where an unpinned step of ``task`` may run: the live peers that registered it,
        else this node if it did.

        Raises:
            Unplaceable: no live member registered ``task`` (the message says how to fix it).
        """
        peers = [n for n in self.holders(TASKS, task) if n not in exclude]
        if peers:
            return peers
        if self._registry.has_task(task):
            return [self.name]
        raise Unplaceable(self._nobody_has(task, exclude))

    def place(self, task: str, pinned: str | None, exclude: frozenset[str] = frozenset()) -> str:
        """Where a step of ``task`` runs: ``pinned`` (checked), else round-robin over the
        candidates.

        Raises:
            Unplaceable: see ``candidates``; or ``pinned`` is a live member that did not
                register ``task``.
        """
        if pinned is not None:
            self.check_pin(task, pinned)
            return pinned
        return self._round_robin.choose("", [NodeLoad(n) for n in self.candidates(task, exclude)])

    def check_pin(self, task: str, node: str) -> None:
        """Refuse a pin to a live peer that did not register ``task``.

        A pin to this node always holds (it has the function in hand); a pin to a node
        that is not up is left to the send, which fails with ``NodeDown``.
        """
        if node == self.name or self._has(node, TASKS, task):
            return  # the common case, decided without copying the member table
        member = self.transport.members().get(node)
        if member is None or member.status != "up":
            return
        raise Unplaceable(
            f"task {task!r} is pinned to node {node!r} (on={node!r}), which did not "
            f"register it{hint(task)}"
        )

    def _nobody_has(self, task: str, exclude: frozenset[str]) -> str:
        peers = [n for n in self.live_nodes() if n != self.name]
        seen = f"live members: {', '.join([self.name, *peers])}"
        if exclude:
            seen += f"; already tried: {', '.join(sorted(exclude))}"
        if is_main(task):
            return f"task {task!r} cannot run on a cluster ({seen}){hint(task)}"
        return f"no live member registered task {task!r} ({seen}){hint(task)}"

    def send_step(self, node: str, request: RunStep) -> None:
        self._runs.placed(request.run, node)
        self.transport.tell(Address(node, SYSTEM_PATH), request.encode())

    def spawn_on(
        self, node: str, class_name: str, args: Sequence[Any], name: str, timeout: float
    ) -> Address:
        """Ask ``node`` to start its registered actor class ``class_name`` as ``name``.

        Raises:
            ActorNotFound: ``node`` is a live peer that did not register ``class_name``
                (refused here, without asking), or said so.
        """
        member = self.transport.members().get(node)
        if member is not None and member.status == "up" and not self._has(node, ACTORS, class_name):
            raise ActorNotFound(
                f"actor class {class_name!r} is not registered on node {node!r}{hint(class_name)}"
            )
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
        self._runs.ended(run_id)
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
            self._require_member(sender, "$locks")
            self._locks(message, reply)
        elif target == ACTORS_PATH:
            request = require(message, {"op": str}, "$actors message")
            answer = self._local.actors_request(sender, request)
            if reply is not None:
                reply.ok(answer)
        elif target.startswith(RUN_PREFIX):
            self._runs.deliver(target[len(RUN_PREFIX) :], message, sender)
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

        For a named actor already delivered to (``_known``, a plain dict read: no
        lock the system's ``spawn`` holds while user code runs), for the
        results and events of remote steps (``$run/<id>``: a decode and a put
        into the run coordinator's mailbox or the event bus, no user code), and
        for the step requests a worker gets (``run_step``, ``cancel_step``,
        ``end_run``: a registry look-up and puts into node actors' mailboxes);
        a chain of remote steps saves one thread hop per step on each side. All
        else, a stopped actor and a message that does not decode, goes to
        ``deliver`` on the dispatch thread (the transport keeps the arrival order).
        """
        if target == SYSTEM_PATH:
            return reply is None and self._step_request(sender, message)
        if target.startswith(RUN_PREFIX):
            return reply is None and self._run_message(target[len(RUN_PREFIX) :], message, sender)
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

    def absent(self, target: str) -> bool:
        """(I/O thread) No actor at ``target``: the transport refuses a message to it at
        once (see ``InlineHandler.absent``). Only ``spawn`` and ``$``-path messages
        add actors, and an actor leaves ``named`` only once stopped."""
        return (
            not target.startswith("$")
            and target not in self._known
            and not self._local.has_named(target)
        )

    def _run_message(self, run_id: str, message: Any, sender: str) -> bool:
        """(I/O thread) A remote step's result or events; False if the slow path must."""
        try:
            return self._runs.deliver(run_id, message, sender, nowait=True)
        except ProtocolError:
            return False  # logged by the slow path

    def _step_request(self, sender: str, message: Any) -> bool:
        """(I/O thread) Handle a step request told to ``$system``; False for any other."""
        operation = self._STEP_OPS.get(message.get("op")) if isinstance(message, dict) else None
        if operation is None:
            return False
        try:
            operation(self, sender, message)
        except ProtocolError:
            return False  # logged by the slow path
        return True

    def log_suppressed(self) -> dict[str, int]:
        """Per-message log lines of this cluster member rate-limited to DEBUG, by key
        (the transport counts its own: ``TransportStats.log_suppressed``)."""
        counts = dict(self._runs.log_suppressed())
        for key, count in self.host.log_suppressed().items():
            counts[key] = counts.get(key, 0) + count
        return counts

    def _system(self, sender: str, message: Any, reply: Reply | None) -> None:
        request = require(message, {"op": str}, "system message")
        handler = self._SYSTEM_OPS.get(request["op"])
        if handler is None:
            raise ProtocolError(f"unknown system operation {request['op']!r} from {sender}")
        if request["op"] in _MEMBERS_ONLY:
            self._require_member(sender, f"$system {request['op']}")
        answer = handler(self, sender, request)
        if reply is not None:
            reply.ok(answer)

    def _require_member(self, sender: str, what: str) -> None:
        """A client (section 7 of PROTOCOL.md) only asks: steps, spawns and locks are the
        members' (a client is never told a step's result, never declared down)."""
        member = self.transport.members().get(sender)
        if member is None or member.status == "left":
            raise ProtocolError(f"{what} from {sender}: only a cluster member may send it")

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
    # The operations the I/O thread may run itself (tells only): no user code, no waiting.
    _STEP_OPS: ClassVar[dict[Any, Callable[[Cluster, str, dict[str, Any]], Any]]] = {
        RunStep.OP: _op_run_step,
        CancelStep.OP: _op_cancel_step,
        EndRun.OP: _op_end_run,
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
