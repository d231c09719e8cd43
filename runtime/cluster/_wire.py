"""The runtime's messages between nodes: step requests, results and events, as msgpack maps.

Contexts and outputs travel as bytes encoded by ``runtime.store._codec`` (so
``Persistable`` user types and tuples survive); errors travel as
``RemoteError`` with the names of the original type's classes (``mro``), so a
retry policy on the coordinator can still tell a ``TemporaryError``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from actors import NodeState, StateChanged
from actors import events as ev
from transport import ProtocolError, RemoteError

__all__ = [
    "NodeLost",
    "RemoteReport",
    "error_names",
    "event_from_wire",
    "event_to_wire",
    "remote_error",
    "require",
]


@dataclass(frozen=True)
class RemoteReport:
    """A coordinator's mailbox message: a result from one of its remote steps."""

    body: dict[str, Any]
    sender: str = ""  # the authenticated node it came from


@dataclass(frozen=True)
class NodeLost:
    """A coordinator's mailbox message: ``node`` went down or left; re-place its steps."""

    node: str
    status: str


def error_names(error: BaseException) -> list[str]:
    """Dotted names of every class of ``error`` (``runtime.TemporaryError``, ``Exception``...)."""
    if isinstance(error, RemoteError):
        names = getattr(error, "mro_names", None)
        if names:
            return list(names)
        return [error.type_name]
    return [
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
        for cls in type(error).__mro__
    ]


def remote_error(error: BaseException, node: str, text: str = "") -> RemoteError:
    """Carry ``error`` across hosts, readable: type name, message, traceback, node, mro."""
    if isinstance(error, RemoteError):
        return error
    names = error_names(error)
    wire = RemoteError(
        names[0], str(error), text or "".join(traceback.format_exception(error)), node
    )
    wire.mro_names = names  # type: ignore[attr-defined]
    return wire


def with_names(error: RemoteError, names: list[str]) -> RemoteError:
    error.mro_names = names  # type: ignore[attr-defined]
    return error


def require(message: Any, fields: dict[str, type | tuple[type, ...]], what: str) -> dict[str, Any]:
    """Validate a decoded map's shape; raises ProtocolError naming the bad field."""
    if not isinstance(message, dict):
        raise ProtocolError(f"{what}: expected a map, got {type(message).__name__}")
    for name, kind in fields.items():
        if name not in message:
            raise ProtocolError(f"{what}: missing field {name!r}")
        if not isinstance(message[name], kind):
            raise ProtocolError(f"{what}: field {name!r} has type {type(message[name]).__name__}")
    return message


def event_to_wire(event: ev.Event) -> dict[str, Any] | None:
    """The node-side events a coordinator's observers must see (others stay local)."""
    if isinstance(event, StateChanged):
        return {
            "ev": "state",
            "run": event.run_id,
            "step": event.node_id,
            "old": event.old.value,
            "new": event.new.value,
            "at": event.timestamp,
        }
    if isinstance(event, ev.Started) and event.step is not None:
        return {
            "ev": "started",
            "run": event.run_id,
            "step": event.step,
            "attempt": event.attempt,
            "node": event.node,
            "at": event.timestamp,
        }
    return None


def event_from_wire(message: dict[str, Any]) -> ev.Event:
    kind = message.get("ev")
    try:
        if kind == "state":
            return StateChanged(
                str(message["step"]),
                NodeState(message["old"]),
                NodeState(message["new"]),
                float(message["at"]),
                str(message["run"]),
            )
        if kind == "started":
            return ev.Started(
                str(message["run"]),
                str(message["step"]),
                int(message["attempt"]),
                str(message["node"]),
                float(message["at"]),
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise ProtocolError(f"malformed event {message!r}: {exc}") from exc
    raise ProtocolError(f"unknown event kind {kind!r}")
