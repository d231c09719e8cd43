"""Deterministic merge of the contexts of parallel branches.

Each branch ran on its own deep copy of ``snapshot``. A branch's changes are
the top-level entries (dict keys, or object attributes) whose value differs
from the snapshot, plus removed keys. They are applied to ``original`` in
branch order, so on a conflict the later branch (in call order) wins whatever
order the branches finished in. A context of another kind (an int, a tuple)
is replaced by the last branch that changed it.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

__all__ = ["merge_contexts"]

_MISSING = object()


def _fields(value: Any) -> dict[str, Any] | None:
    if isinstance(value, MutableMapping):
        return dict(value)
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    return None


def merge_contexts(original: Any, snapshot: Any, branches: Sequence[Any]) -> Any:
    """Apply each branch's changes to ``original``; returns the merged context."""
    before = _fields(snapshot)
    if before is None:
        merged = original
        for branch in branches:
            if branch != snapshot:
                merged = branch
        return merged
    for branch in branches:
        after = _fields(branch)
        if after is None:
            raise TypeError(f"parallel branch returned a context of another kind: {branch!r}")
        for name, value in after.items():
            if before.get(name, _MISSING) is _MISSING or before[name] != value:
                _set(original, name, value)
        for name in before.keys() - after.keys():
            _delete(original, name)
    return original


def _set(target: Any, name: str, value: Any) -> None:
    if isinstance(target, MutableMapping):
        target[name] = value
    else:
        setattr(target, name, value)


def _delete(target: Any, name: str) -> None:
    if isinstance(target, MutableMapping):
        target.pop(name, None)
    elif hasattr(target, name):
        delattr(target, name)
