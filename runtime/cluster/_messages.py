"""The step protocol between nodes: one frozen dataclass per message, encoded and decoded here.

A coordinator sends ``RunStep``, ``CancelStep`` and ``EndRun`` to a worker's
``$system``; the worker's ``StepHost`` answers at the coordinator's
``$run/<run_id>`` with two messages per attempt: a ``StepStarted`` (the bus's
``Started`` with the ``Running`` transition before it) and a ``StepOutcome``
(the result, with the final transition before it). ``NodeLost`` is the local
notice that re-places a lost node's steps.

Each message encodes itself to the msgpack map the wire carries and decodes a
received one strictly: a missing or mistyped field raises ``ProtocolError``
naming it, so a bad message stops at the cluster's handler and never reaches a
coordinator. The wire format is the one the previous untyped dicts used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors import NodeState, StateChanged
from actors import events as ev
from runtime.cluster._paths import run_path
from runtime.cluster._wire import with_names
from transport import ProtocolError, RemoteError

__all__ = [
    "CancelStep",
    "EndRun",
    "NodeLost",
    "RunStep",
    "StepOutcome",
    "StepStarted",
    "is_step_event",
    "step_events",
]


_STATES = {state.value: state for state in NodeState}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Fields:
    """A received map, read field by field; the first bad field raises ``ProtocolError``."""

    def __init__(self, message: Any, what: str) -> None:
        if not isinstance(message, dict):
            raise ProtocolError(f"{what}: expected a map, got {type(message).__name__}")
        self._message = message
        self._what = what

    def _get(self, name: str) -> Any:
        if name not in self._message:
            raise ProtocolError(f"{self._what}: missing field {name!r}")
        return self._message[name]

    def _bad(self, name: str) -> ProtocolError:
        value = self._message[name]
        return ProtocolError(f"{self._what}: field {name!r} has type {type(value).__name__}")

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self._bad(name)
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(name)
        return value

    def number(self, name: str) -> float:
        value = self._get(name)
        if not _is_number(value):
            raise self._bad(name)
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise self._bad(name)
        return value

    def blob(self, name: str) -> bytes:
        value = self._get(name)
        if not isinstance(value, bytes):
            raise self._bad(name)
        return value

    def blob_or_none(self, name: str) -> bytes | None:
        return None if self._get(name) is None else self.blob(name)

    def state(self, name: str) -> NodeState:
        value = self.text(name)
        state = _STATES.get(value)
        if state is None:
            raise ProtocolError(f"{self._what}: field {name!r} is no state: {value!r}")
        return state

    def names(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if not isinstance(value, list | tuple) or not all(isinstance(n, str) for n in value):
            raise ProtocolError(f"{self._what}: field {name!r} must be a list of str")
        return tuple(value)

    def tokens(self, name: str) -> dict[str, int]:
        value = self._get(name)
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in value.items()
        ):
            raise ProtocolError(f"{self._what}: field {name!r} must be a map of str to int")
        return dict(value)

    def changes(self, name: str, run: str, step: str) -> tuple[StateChanged, ...]:
        """An optional list of ``[old, new, at]`` transitions of ``step`` (absent: none)."""
        value = self._message.get(name)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise self._bad(name)
        changes = []
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 3:
                old, new, at = _STATES.get(item[0]), _STATES.get(item[1]), item[2]
                if old is not None and new is not None and _is_number(at):
                    changes.append(StateChanged(step, old, new, float(at), run))
                    continue
            raise ProtocolError(
                f"{self._what}: field {name!r} must hold [old state, new state, at] items, "
                f"got {item!r}"
            )
        return tuple(changes)

    def error(self, name: str) -> RemoteError | None:
        value = self._get(name)
        if value is not None and not isinstance(value, RemoteError):
            raise self._bad(name)
        return value


@dataclass(frozen=True)
class RunStep:
    """Coordinator -> worker ``$system``: run one attempt of ``step`` of run ``run``."""

    OP: ClassVar[str] = "run_step"

    run: str
    step: str
    incarnation: int  # the coordinator's node record: a result of an older one is stale
    attempt: int  # the coordinator's attempt number, echoed in events and the result
    task: str  # the registered name the worker looks the task up by
    locks: Mapping[str, int]  # fencing tokens of the locks held around the step
    context: bytes  # the step's input, encoded by ``runtime.store.encode_value``

    def encode(self) -> dict[str, Any]:
        return {
            "op": self.OP,
            "run": self.run,
            "key": self.step,
            "inc": self.incarnation,
            "attempt": self.attempt,
            "task": self.task,
            "locks": dict(self.locks),
            "ctx": self.context,
        }

    @classmethod
    def decode(cls, message: Any) -> RunStep:
        f = _Fields(message, cls.OP)
        return cls(
            f.text("run"),
            f.text("key"),
            f.integer("inc"),
            f.integer("attempt"),
            f.text("task"),
            f.tokens("locks"),
            f.blob("ctx"),
        )


@dataclass(frozen=True)
class CancelStep:
    """Coordinator -> worker ``$system``: stop waiting for ``step`` (sets its cancel event)."""

    OP: ClassVar[str] = "cancel_step"

    run: str
    step: str

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "run": self.run, "key": self.step}

    @classmethod
    def decode(cls, message: Any) -> CancelStep:
        f = _Fields(message, cls.OP)
        return cls(f.text("run"), f.text("key"))


@dataclass(frozen=True)
class EndRun:
    """Coordinator -> worker ``$system``: the run is over; free every node still bound to it."""

    OP: ClassVar[str] = "end_run"

    run: str

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "run": self.run}

    @classmethod
    def decode(cls, message: Any) -> EndRun:
        return cls(_Fields(message, cls.OP).text("run"))


@dataclass(frozen=True)
class StepOutcome:
    """Worker -> coordinator ``$run/<run>``: how one attempt ended, or that it was refused.

    ``run`` travels in the path, not the body; ``sender`` is the authenticated
    node it came from, set on receipt (only the step's node may report it).
    """

    KIND: ClassVar[str] = "result"

    run: str
    step: str
    incarnation: int
    attempt: int
    state: NodeState
    payload: bytes | None = None  # ``[output, ctx]`` encoded, when Completed
    error: RemoteError | None = None
    error_types: tuple[str, ...] = ()  # dotted names of the error's classes, most derived first
    started: float = 0.0
    finished: float = 0.0
    refused: bool = False  # not run at all (the node is draining): place it elsewhere
    # the step's transitions on its node since its StepStarted (``Running -> Completed``...)
    changes: tuple[StateChanged, ...] = ()
    sender: str = field(default="", compare=False)

    @property
    def path(self) -> str:
        return run_path(self.run)

    def encode(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "key": self.step,
            "inc": self.incarnation,
            "attempt": self.attempt,
            "state": self.state.value,
            "payload": self.payload,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "mro": list(self.error_types),
            "refused": self.refused,
            "changes": _changes_to_wire(self.changes),
        }

    @classmethod
    def decode(cls, message: Any, *, run: str, sender: str) -> StepOutcome:
        """The result at ``$run/<run>`` from ``sender``; the error gets its class names back."""
        f = _Fields(message, f"step result for run {run}")
        kind = f.text("kind")
        if kind != cls.KIND:
            raise ProtocolError(f"step result for run {run}: field 'kind' is {kind!r}")
        error, types = f.error("error"), f.names("mro")
        if error is not None:
            with_names(error, list(types))  # so a retry policy can still tell its type
        step = f.text("key")
        return cls(
            run,
            step,
            f.integer("inc"),
            f.integer("attempt"),
            f.state("state"),
            f.blob_or_none("payload"),
            error,
            types,
            f.number("started"),
            f.number("finished"),
            f.flag("refused"),
            f.changes("changes", run, step),
            sender,
        )


@dataclass(frozen=True)
class NodeLost:
    """Local notice, to every coordinator: ``node`` went down or left; re-place its steps.

    Travels as ``$system`` op ``node_lost`` through this node's own dispatch
    queue (behind the lost node's results); only this node may send it.
    """

    OP: ClassVar[str] = "node_lost"

    node: str
    status: str

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, "node": self.node, "status": self.status}

    @classmethod
    def decode(cls, message: Any) -> NodeLost:
        f = _Fields(message, cls.OP)
        return cls(f.text("node"), f.text("status"))


@dataclass(frozen=True)
class StepStarted:
    """Worker -> coordinator ``$run/<run>``: an attempt started on the sender.

    Carries the bus's ``Started`` and, before it, the node's transitions that
    led there (``Pending -> Running``, or ``Failed -> Running`` on a retry):
    one message where there were two.
    """

    EV: ClassVar[str] = "started"

    run: str
    step: str
    attempt: int  # the coordinator's attempt number
    node: str
    at: float
    changes: tuple[StateChanged, ...] = ()

    def encode(self) -> dict[str, Any]:
        return {
            "ev": self.EV,
            "run": self.run,
            "step": self.step,
            "attempt": self.attempt,
            "node": self.node,
            "at": self.at,
            "changes": _changes_to_wire(self.changes),
        }

    def events(self) -> list[ev.Event]:
        """What the coordinator's observers see, in the order the node emitted it."""
        started = ev.Started(self.run, self.step, self.attempt, self.node, self.at)
        return [*self.changes, started]


def _changes_to_wire(changes: tuple[StateChanged, ...]) -> list[list[Any]]:
    return [[c.old.value, c.new.value, c.timestamp] for c in changes]


def is_step_event(message: Any) -> bool:
    """Whether a message at ``$run/<run>`` is a step event (else it must be a result)."""
    return isinstance(message, dict) and "ev" in message


def step_events(message: Any) -> list[ev.Event]:
    """The bus events a step event message stands for, in order.

    ``started`` is a ``StepStarted``; ``state`` (one ``StateChanged``) is what
    nodes sent before transitions travelled inside ``started`` and results,
    still accepted from them.
    """
    f = _Fields(message, "step event")
    kind = f.text("ev")
    if kind == StepStarted.EV:
        run, step = f.text("run"), f.text("step")
        started = StepStarted(
            run,
            step,
            f.integer("attempt"),
            f.text("node"),
            f.number("at"),
            f.changes("changes", run, step),
        )
        return started.events()
    if kind == "state":
        return [
            StateChanged(
                f.text("step"), f.state("old"), f.state("new"), f.number("at"), f.text("run")
            )
        ]
    raise ProtocolError(f"step event: unknown kind {kind!r}")
