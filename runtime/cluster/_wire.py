"""Helpers for messages between nodes: errors that cross hosts, and checking a received map.

The messages of the step protocol themselves are in ``_messages``. Contexts
and outputs travel as bytes encoded by ``runtime.store._codec`` (so
``Persistable`` user types and tuples survive); errors travel as
``RemoteError`` with the names of the original type's classes (``mro``), so a
retry policy on the coordinator can still tell a ``TemporaryError``.
"""

from __future__ import annotations

import traceback
from typing import Any

from transport import ActorNotFound, Overloaded, ProtocolError, RemoteError

__all__ = ["error_names", "remote_error", "require", "with_names"]


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
    if not text and not isinstance(error, ActorNotFound | ProtocolError | Overloaded):
        # a refusal (an unregistered task, a bad request) needs no traceback: see transport
        text = "".join(traceback.format_exception(error))
    wire = RemoteError(names[0], str(error), text, node)
    wire.mro_names = names  # type: ignore[attr-defined]
    return wire


def with_names(error: RemoteError, names: list[str]) -> RemoteError:
    """``error`` as received, given back the class names its sender sent beside it."""
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
