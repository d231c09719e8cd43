"""The stable name of a task function: how a step is named on the wire and in registries."""

from __future__ import annotations

from typing import Any

from actors import CompositionError

__all__ = ["qualified_name"]


def qualified_name(obj: Any) -> str:
    """``module:qualname`` of a function or class (the default registered name)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise CompositionError(
            f"{obj!r} has no stable module:qualname (a lambda or a local function?); "
            "define it at module level or register it under an explicit name"
        )
    return f"{module}:{qualname}"
