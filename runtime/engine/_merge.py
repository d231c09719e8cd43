"""Deterministic merge of the contexts of parallel branches, never losing a write in silence.

Each branch ran on its own deep copy of ``snapshot``. A branch's changes are
the top-level entries (dict keys, or object attributes) whose value differs
from the snapshot, and the entries it removed. An entry changed by one branch
takes that change. An entry changed by several takes their value when they
agree (equal values, or all removed it); when a merge function is given for
it, it takes ``fn(values)``, the values of the branches that changed it in
call order; else the branches conflict and the parallel fails with a
``PermanentError`` naming the entries and the branches, and ``original`` is
left as it was. A removal never merges with a change. A context of another
kind (an int, a list) is one entry, "the context", with no merge function.
Finishing order never matters: only call order and values do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from actors import PermanentError

__all__ = ["merge_contexts"]

_REMOVED = object()
_LISTED = 6  # branches named in a conflict before "and N more"
_PART = 80  # characters of the parallel's name shown in messages


def _fields(value: Any) -> dict[Any, Any] | None:
    if isinstance(value, MutableMapping):
        return dict(value)
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    return None


def _equal(a: Any, b: Any) -> bool:
    """``a == b``, and False when equality cannot tell (it raised, or is not a bool)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


def merge_contexts(
    original: Any,
    snapshot: Any,
    branches: Sequence[Any],
    *,
    names: Sequence[str] = (),
    merge: Mapping[str, Callable[[list[Any]], Any]] | None = None,
    part: str = "parallel",
) -> Any:
    """Apply the branches' changes to ``original`` and return it (or the new whole value).

    ``names`` are the branches' names (for messages), ``merge`` the merge
    functions by key, ``part`` the parallel's name. Raises ``PermanentError``
    on a conflict or when a merge function raises (with it as ``__cause__``).
    """
    before = _fields(snapshot)
    if before is None:
        return _merge_whole(original, snapshot, branches, names, part)
    word = "key" if isinstance(snapshot, MutableMapping) else "attribute"
    settled: list[tuple[Any, Any]] = []
    conflicts: list[tuple[str, list[int], list[int]]] = []  # (what, writers, removers)
    for name, changes in _changes(before, branches).items():
        what = f"{word} {name!r}"
        values = [(i, v) for i, v in changes if v is not _REMOVED]
        removed = [i for i, v in changes if v is _REMOVED]
        fn = merge.get(name) if merge is not None else None
        if removed and values:
            conflicts.append((what, [i for i, _ in values], removed))
        elif removed:
            settled.append((name, _REMOVED))
        elif fn is not None:
            settled.append((name, _merged(fn, what, part, [v for _, v in values])))
        elif any(not _equal(values[0][1], v) for _, v in values[1:]):
            conflicts.append((what, [i for i, _ in values], []))
        else:
            settled.append((name, values[0][1]))
    if conflicts:
        raise _conflict(part, names, conflicts)
    for name, value in settled:
        if value is _REMOVED:
            _delete(original, name)
        else:
            _set(original, name, value)
    return original


def _changes(before: dict[Any, Any], branches: Sequence[Any]) -> dict[Any, list[tuple[int, Any]]]:
    """Per entry, in order of first change: (branch index, new value or _REMOVED)."""
    writes: dict[Any, list[tuple[int, Any]]] = {}
    for index, branch in enumerate(branches):
        after = _fields(branch)
        if after is None:
            raise TypeError(f"parallel branch returned a context of another kind: {branch!r}")
        for name, value in after.items():
            if name not in before or not _equal(before[name], value):
                writes.setdefault(name, []).append((index, value))
        for name in before:
            if name not in after:
                writes.setdefault(name, []).append((index, _REMOVED))
    return writes


def _merge_whole(
    original: Any, snapshot: Any, branches: Sequence[Any], names: Sequence[str], part: str
) -> Any:
    """A context without entries (an int, a list): one value that branches agree on, or not."""
    changed = [(i, b) for i, b in enumerate(branches) if not _equal(b, snapshot)]
    if not changed:
        return original
    if any(not _equal(changed[0][1], b) for _, b in changed[1:]):
        raise _conflict(part, names, [("the context", [i for i, _ in changed], [])])
    return changed[0][1]


def _merged(fn: Callable[[list[Any]], Any], what: str, part: str, values: list[Any]) -> Any:
    try:
        return fn(values)
    except Exception as exc:
        raise PermanentError(
            f"parallel {_short(part)}: the merge function for {what} "
            f"raised {type(exc).__name__}: {exc}"
        ) from exc


def _conflict(
    part: str, names: Sequence[str], conflicts: Sequence[tuple[str, list[int], list[int]]]
) -> PermanentError:
    """The error for ``conflicts``: (entry, branches that wrote it, branches that removed it)."""
    counts = Counter(names)

    def label(i: int) -> str:
        if i >= len(names):
            return str(i)
        return repr(names[i]) if counts[names[i]] == 1 else f"{names[i]!r} (branch {i})"

    def listed(indexes: Sequence[int]) -> str:
        shown = [label(i) for i in indexes[:_LISTED]]
        if len(indexes) > _LISTED:
            shown.append(f"{len(indexes) - _LISTED} more")
        if len(shown) == 1:
            return f"branch {shown[0]}"
        return "branches " + ", ".join(shown[:-1]) + " and " + shown[-1]

    lines = [
        f"{listed(removers)} removed {what}, which {listed(writers)} changed"
        if removers
        else f"{listed(writers)} wrote different values to {what}"
        for what, writers, removers in conflicts
    ]
    return PermanentError(
        f"parallel {_short(part)}: the branches' contexts conflict: {'; '.join(lines)}. "
        "Have the branches write distinct keys, or give parallel(..., merge={key: fn}) "
        "to combine the values written to a key"
    )


def _short(part: str) -> str:
    """A parallel's name is its branches' names: cut it short in messages."""
    return part if len(part) <= _PART else part[: _PART - 3] + "..."


def _set(target: Any, name: Any, value: Any) -> None:
    if isinstance(target, MutableMapping):
        target[name] = value
    else:
        setattr(target, name, value)


def _delete(target: Any, name: Any) -> None:
    if isinstance(target, MutableMapping):
        target.pop(name, None)
    elif hasattr(target, name):
        delattr(target, name)
